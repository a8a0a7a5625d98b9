"""The admin's user list, a page at a time: order, cursors, limits, search, bad input, indexes.

Real HTTP to the app, real SQL. Users are seeded in bulk (one INSERT of many rows), not
signed in one by one; the admin is a real sign-in given the role by `flask roles grant`.
The query plans are checked with EXPLAIN on the statements the app really sent.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
import sqlalchemy as sa
from conftest import PROVIDERS, Browser, RunningApp
from test_api_tokens import cli, sign_in

from {{ cookiecutter.package_name }}.models import User, UserIdentity, db, search_key

PAGE = 50  # the default limit


# --- helpers ------------------------------------------------------------------------


def admin(app: RunningApp, mock, app_env: dict[str, str]) -> tuple[Browser, str]:
    """A signed-in admin (a real sign-in, the role given by `flask roles grant`)."""
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    assert cli(app_env, "roles", "grant", user_id, "admin").exit_code == 0
    return browser, user_id


def seed_users(engine: sa.Engine, people: list[tuple[str | None, str | None, int]]) -> list[str]:
    """(name, email, created_at) each: inserted in one statement; returns their ids."""
    ids = [secrets.token_hex(12) for _ in people]
    records = [
        {
            "id": user_id,
            "name": name,
            "email": email,
            "email_lower": search_key(email),
            "name_lower": search_key(name),
            "email_verified": False,
            "created_at": created_at,
            "last_login_at": created_at,
        }
        for user_id, (name, email, created_at) in zip(ids, people, strict=True)
    ]
    with engine.begin() as connection:
        connection.execute(User.__table__.insert(), records)
    return ids


def seed_identities(engine: sa.Engine, ids: list[str]) -> None:
    """A verified identity at the first provider for each (`Person<n>@Example.org`), then
    fresh statistics: a planner that believes the table empty would rightly scan it."""
    with engine.begin() as connection:
        connection.execute(
            UserIdentity.__table__.insert(),
            [
                {
                    "user_id": user_id,
                    "provider": PROVIDERS[0],
                    "subject": str(n),
                    "email": f"Person{n}@Example.org",
                    "email_verified": True,
                    "created_at": 0,
                    "last_login_at": 0,
                }
                for n, user_id in enumerate(ids)
            ],
        )
        connection.exec_driver_sql("ANALYZE")


def numbered(count: int, start: int = 0, ties: int = 7) -> list[tuple[str, str, int]]:
    """People created in bursts of `ties` in the same second (so ids break the ties)."""
    return [
        (f"Person {n}", f"person{n}@example.org", 1_000_000 + n // ties)
        for n in range(start, start + count)
    ]


def list_page(browser: Browser, **params: object) -> requests.Response:
    return browser.get("/api/admin/users", params={k: v for k, v in params.items() if v})


def walk(browser: Browser, limit: int | None = None, q: str | None = None) -> list[list[str]]:
    """Every page, following next_cursor to the end: the ids, page by page."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        response = list_page(browser, limit=limit, q=q, cursor=cursor)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"users", "next_cursor"}
        pages.append([u["id"] for u in body["users"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 1000, "the cursor does not advance"


def flat(pages: list[list[str]]) -> list[str]:
    return [user_id for page in pages for user_id in page]


def creation_order(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        found = connection.execute(sa.text("SELECT id FROM users ORDER BY created_at, id"))
        return [r.id for r in found]


# --- order, cursors, limits ---------------------------------------------------------


def test_pages_list_every_user_once_in_creation_order(app, mock, app_env, database) -> None:
    browser, admin_id = admin(app, mock, app_env)
    seed_users(database, numbered(230))
    pages = walk(browser)
    assert [len(p) for p in pages] == [PAGE, PAGE, PAGE, PAGE, 31]  # 230 + the admin
    assert flat(pages) == creation_order(database)
    assert flat(pages)[-1] == admin_id  # created last
    # Each user in the /api/me shape, roles and identities included.
    first = list_page(browser, limit=1).json()["users"][0]
    assert set(first) == {
        "id", "name", "email", "email_verified", "avatar_url", "roles", "identities"
    }  # fmt: skip
    assert first["id"] == pages[0][0] and first["name"] in {f"Person {n}" for n in range(7)}
    assert first["roles"] == ["user"] and first["email"].endswith("@example.org")


@pytest.mark.parametrize("limit", [1, 7, 100])
def test_a_limit_sizes_every_page_but_the_last(app, mock, app_env, database, limit) -> None:
    browser, _ = admin(app, mock, app_env)
    seed_users(database, numbered(120))
    pages = walk(browser, limit=limit)
    assert all(len(p) == limit for p in pages[:-1]) and 1 <= len(pages[-1]) <= limit
    assert flat(pages) == creation_order(database)


def test_a_cursor_stays_valid_while_users_are_added(app, mock, app_env, database) -> None:
    browser, _ = admin(app, mock, app_env)
    seed_users(database, numbered(60))
    before = creation_order(database)
    first = list_page(browser, limit=25).json()
    # People sign up between two pages: the list goes on where it was, each user once.
    added = seed_users(database, [(f"New {n}", None, 2_000_000_000 + n // 3) for n in range(30)])
    seen = [u["id"] for u in first["users"]]
    cursor = first["next_cursor"]
    while cursor:
        body = list_page(browser, limit=25, cursor=cursor).json()
        seen += [u["id"] for u in body["users"]]
        cursor = body["next_cursor"]
    assert len(seen) == len(set(seen)), "a user was listed twice"
    assert seen == before + sorted(added, key=creation_order(database).index)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=101",
        "limit=1000000000",
        "limit=abc",
        "limit=1.5",
        "limit=%EF%BC%91",  # a full-width digit one
        "limit=%ff",
        "q=%ff",  # not UTF-8
        "q=%C3%28",
        "q=abc%00",
        "q=" + "a" * 321,
        "cursor=%ff",
    ],
)
def test_bad_list_parameters_get_a_clean_400(app, mock, app_env, query) -> None:
    browser, _ = admin(app, mock, app_env)
    response = browser.get(f"/api/admin/users?{query}")
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] in ("invalid_request", "invalid_cursor") and body["hint"]
    page = browser.get(f"/admin?{query}")
    assert page.status_code == 400 and page.headers["Content-Type"].startswith("text/html")


def test_forged_or_misused_cursors_get_a_clean_400(app, mock, app_env, database) -> None:
    browser, _ = admin(app, mock, app_env)
    seed_users(database, numbered(10) + [("Zed", "zed@example.org", 5)] * 3)
    everyone = list_page(browser, limit=2).json()["next_cursor"]
    searching = list_page(browser, limit=1, q="zed").json()["next_cursor"]
    assert everyone and searching
    flipped = everyone[:10] + ("A" if everyone[10] != "A" else "B") + everyone[11:]
    forged = [
        flipped,  # altered
        everyone[:-4],  # cut short
        "x" * 2000,  # too long
        "é",
        "bm90IG91cnM",  # base64 of "not ours"
        secrets.token_urlsafe(60),
    ]
    for cursor in forged:
        response = list_page(browser, cursor=cursor)
        assert response.status_code == 400 and response.json()["error"] == "invalid_cursor"
    # A cursor belongs to its search: another q (or none) cannot use it, nor it theirs.
    assert list_page(browser, cursor=searching).status_code == 400
    assert list_page(browser, cursor=searching, q="ze").status_code == 400
    assert list_page(browser, cursor=everyone, q="zed").status_code == 400
    assert list_page(browser, cursor=searching, q="ZED ").status_code == 200  # the same search
    # Opaque: nothing of the position (an email, an id, a time) can be read from it.
    assert "zed" not in searching.lower() and len(searching) >= 40


def test_the_admin_page_pages_and_searches_too(app, mock, app_env, database) -> None:
    browser, _ = admin(app, mock, app_env)
    ids = seed_users(database, numbered(75))
    page = browser.get("/admin")
    assert page.status_code == 200
    assert page.text.count("<tr data-user=") == PAGE
    (following,) = [
        link.split('"')[0] for link in page.text.split('href="')[1:] if 'rel="next"' in link
    ]
    assert "cursor=" in following and "@" not in following
    second = browser.get(following.replace("&amp;", "&"))
    assert second.status_code == 200 and second.text.count("<tr data-user=") == 26
    assert 'rel="next"' not in second.text and 'rel="first"' in second.text
    found = browser.get("/admin", params={"q": "PERSON7"})
    assert found.text.count("<tr data-user=") == 6  # person7 and person70..74 of 0..74
    assert f'data-user="{ids[7]}"' in found.text
    assert "No user" in browser.get("/admin", params={"q": "nobody"}).text


# --- search -------------------------------------------------------------------------


def test_search_matches_an_email_or_name_prefix_in_any_case(app, mock, app_env, database) -> None:
    browser, _ = admin(app, mock, app_env)
    by_email = seed_users(
        database,
        [
            ("Someone", "Zara@Example.org", 10),
            ("Zack Both", "zack@example.org", 11),  # name and email match: listed once
            (None, "zaz@example.org", 12),
        ],
    )
    by_name = seed_users(
        database,
        [("zeta Jones", "jones@example.org", 13), ("Zaïre", None, 14), ("Zorro", "", 15)],
    )
    seed_users(
        database,
        [
            ("Aza", "aza@example.org", 16),  # contains z, starts otherwise
            (None, None, 17),
            ("Y", "y@example.org", 18),
        ],
    )
    # Emails by email, then names (whose email does not match) by name.
    expected = [by_email[1], by_email[0], by_email[2], by_name[1], by_name[0], by_name[2]]
    for q in ("z", "Z", "  z  "):
        for limit in (1, 2, 4, 50):
            assert flat(walk(browser, limit=limit, q=q)) == expected, (q, limit)
    assert flat(walk(browser, q="zA")) == [by_email[1], by_email[0], by_email[2], by_name[1]]
    assert flat(walk(browser, q="zaï")) == [by_name[1]]
    assert flat(walk(browser, q="zara@example.org")) == [by_email[0]]
    assert flat(walk(browser, q="zeta j")) == [by_name[0]]
    assert flat(walk(browser, q="zzz")) == []


def test_search_takes_its_characters_literally(app, mock, app_env, database) -> None:
    """No LIKE wildcards: % and _ are characters like any other."""
    browser, _ = admin(app, mock, app_env)
    literal, other, percent = seed_users(
        database,
        [(None, "a_b@example.org", 1), (None, "axb@example.org", 2), ("50% off", None, 3)],
    )
    assert flat(walk(browser, q="a_")) == [literal]
    assert flat(walk(browser, q="ax")) == [other]
    assert flat(walk(browser, q="50%")) == [percent]
    assert flat(walk(browser, q="5_%")) == []


def test_a_search_page_reads_a_bounded_number_of_rows(app, mock, app_env, database) -> None:
    """Where many names and emails both match, name pages come back short rather than
    read every match; each user is still listed once, and the list still ends."""
    browser, _ = admin(app, mock, app_env)
    both = seed_users(database, [(f"Dup {n:03}", f"dup{n:03}@x.org", n) for n in range(120)])
    names = seed_users(database, [(f"Dup {n:03}z", f"other{n}@x.org", 500) for n in range(3)])
    pages = walk(browser, limit=5, q="dup")
    assert flat(pages) == both + names
    assert all(len(page) <= 5 for page in pages)
    # The 120 email matches come in full pages; the name phase reads at most 4 x 5 + 1 rows
    # of the name index per request, so it passes the 120 names that matched by email
    # over several requests, some of them short (or empty) pages.
    assert [len(page) for page in pages[:24]] == [5] * 24
    assert len(pages) > 24 + 1


# --- indexes ------------------------------------------------------------------------


@contextmanager
def statements_sent(app: RunningApp) -> Iterator[list[tuple[str, object]]]:
    """Every SQL statement the app sends while the block runs, with its parameters."""
    sent: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        sent.append((statement, parameters))

    with app.app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def plan(engine: sa.Engine, statement: str, parameters: object) -> str:
    """The query plan. On PostgreSQL a full scan is made as costly as the planner allows, and
    for a page (LIMIT) so is a sort: what remains of them is what no index can serve."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET enable_seqscan = off")
            if paged(statement):
                connection.exec_driver_sql("SET enable_sort = off")
            found = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            return "\n".join(r[0] for r in found)
        found = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return "\n".join(r[-1] for r in found)


def paged(statement: str) -> bool:
    return " LIMIT " in statement.upper()


# The tables the tests fill with thousands of rows; the others hold a row or two, which a
# planner rightly reads whole (role_grants only ever holds the few roles given by hand).
BIG_TABLES = ("users", "identities")


def full_scans(engine: sa.Engine, statement: str, text: str) -> list[str]:
    """The plan's steps that read a whole big table or index, or sort to find a page's first
    rows. A page (LIMIT) may walk an index from its start, as the LIMIT stops it; sorting the
    few rows an index lookup found is fine."""
    if engine.dialect.name == "postgresql":
        return _postgresql_full_scans(statement, text)
    found = []
    for line in text.splitlines():
        walk = any(line.startswith(f"SCAN {table}") for table in BIG_TABLES)
        if walk and not (paged(statement) and "INDEX" in line):
            found.append(line)
        if paged(statement) and "TEMP B-TREE FOR ORDER BY" in line:
            found.append(line)
    if KEYSET in statement and ",id)>(?,?)" not in text:
        found.append("the index walk does not start at the cursor")
    return found


KEYSET = ", users.id) > ("  # a page after a cursor: (key, id) > (key, id)


def _postgresql_full_scans(statement: str, text: str) -> list[str]:
    page, found = paged(statement), []
    nodes = text.split("->")
    for node in nodes:
        head = node.strip().splitlines()[0] if node.strip() else ""
        big = any(f" on {table} " in f"{head} " for table in BIG_TABLES)
        if big and head.startswith("Seq Scan"):
            found.append(head)
        elif big and "Scan using" in head and not page and "Index Cond" not in node:
            found.append(head)  # a whole index read, filtered row by row
        elif page and head.startswith(("Sort", "Incremental Sort")):
            found.append(head)
    if KEYSET in statement and not re.search(r"Index Cond: .*ROW\(", text):
        found.append("the index walk does not start at the cursor")
    return found


def test_every_list_query_is_served_by_an_index(app, mock, app_env, database) -> None:
    browser, _ = admin(app, mock, app_env)
    dups = [(f"Dup {n}", f"dup{n}@x.org", n) for n in range(40)]
    ids = seed_users(database, numbered(300) + dups)
    seed_identities(database, ids)
    requests_made = [{"limit": 5}, {"limit": 5, "q": "person1"}, {"limit": 5, "q": "person 1"}]
    for params in requests_made:
        with statements_sent(app) as sent:
            first = list_page(browser, **params).json()
            list_page(browser, **params, cursor=first["next_cursor"])
        selects = [(s, p) for s, p in sent if s.lstrip().upper().startswith("SELECT")]
        assert any("ORDER BY" in s for s, _ in selects), sent
        for statement, parameters in selects:
            text = plan(database, statement, parameters)
            assert not full_scans(database, statement, text), f"{statement}\n{parameters}\n{text}"


def test_flask_roles_grant_finds_an_email_by_index_among_many_users(
    app, mock, app_env, database
) -> None:
    """The CLI's email lookup reads the identities' email index, never every user."""
    ids = seed_users(database, numbered(2000))
    seed_identities(database, ids)
    from {{ cookiecutter.package_name }} import create_app

    flask_app = create_app(app_env)
    with flask_app.app_context():
        engine = db.engine
    sent: list[tuple[str, object]] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: sent.append((args[2], args[3])))
    result = flask_app.test_cli_runner().invoke(
        args=["roles", "grant", "PERSON1234@example.org", "admin"]
    )
    assert result.exit_code == 0, result.output
    assert f"{ids[1234]} " in result.output and "roles user, admin" in result.output
    selects = [(s, p) for s, p in sent if s.lstrip().upper().startswith("SELECT")]
    assert selects
    for statement, parameters in selects:
        text = plan(database, statement, parameters)
        assert not full_scans(database, statement, text), f"{statement}\n{parameters}\n{text}"
