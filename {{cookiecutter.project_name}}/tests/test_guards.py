"""Route guards and roles: login_required, roles_required, protect_blueprint, ADMIN_EMAILS,
`flask roles`, /admin and /api/admin/users, over real HTTP.

The guards are exercised on a small blueprint built here and registered on a fresh app,
served on the port the mock providers know as the registered callback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa
from conftest import (
    FACTS,
    PROVIDERS,
    Browser,
    RunningApp,
    base_env,
    cases_or_skip,
    free_port,
    query,
    rows,
)
from flask import Blueprint, jsonify
from test_api_tokens import (
    PROVIDER,
    call,
    challenge,
    cli,
    new_token,
    sign_in,
)

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.auth import (
    current_user,
    login_required,
    protect_blueprint,
    roles_required,
)

# A provider that vouches for its person's email, and that email: only such an address
# makes an admin.
VERIFIED = next((p for p in PROVIDERS if FACTS[p].email_verified and FACTS[p].email), None)
VERIFIED_EMAIL = (FACTS[VERIFIED].email or "") if VERIFIED else ""
needs_verified = pytest.mark.skipif(VERIFIED is None, reason="no provider here verifies emails")
# A provider that does not vouch for the email and one that does, showing the same address.
SAME_EMAIL_UNVERIFIED_AND_VERIFIED = [
    (unverified, verified)
    for unverified in PROVIDERS
    for verified in PROVIDERS
    if not FACTS[unverified].email_verified
    and FACTS[verified].email_verified
    and FACTS[unverified].email
    and FACTS[unverified].email == FACTS[verified].email
]


def role_grants(database: sa.Engine) -> list[tuple[str, str, str]]:
    """Every stored role grant: (user id, role, source)."""
    found = rows(database, "SELECT user_id, role, source FROM role_grants ORDER BY role, source")
    return [tuple(r) for r in found]


def guarded_blueprints() -> list[Blueprint]:
    pages = Blueprint("guarded", __name__, url_prefix="/guarded")

    @pages.get("/page")
    @login_required
    def page() -> str:
        return f"<p>page for {current_user().id}</p>"

    @pages.get("/admin")
    @roles_required("admin")
    def admin_page() -> str:
        return "<p>admin page</p>"

    @pages.get("/scoped")
    @login_required(scope="profile:read")  # would take a token, were this under /api/
    def scoped() -> str:
        return "<p>scoped page</p>"

    @pages.post("/act")
    @login_required
    def act() -> str:
        return "acted"

    api = Blueprint("guarded_api", __name__, url_prefix="/api/guarded")

    @api.get("/data")
    @login_required(scope="profile:read")
    def data():
        return jsonify(user=current_user().id)

    @api.post("/data")
    @login_required(scope="profile:read")
    def change_data():
        return jsonify(changed=current_user().id)

    @api.get("/admin")
    @roles_required("admin", scope="admin")
    def admin_data():
        return jsonify(admin=True)

    staff = Blueprint("staff", __name__, url_prefix="/staff")

    @staff.get("/")
    def staff_home() -> str:
        return "<p>staff only</p>"

    @staff.post("/")
    def staff_post() -> str:
        return "staff posted"

    protect_blueprint(staff, "staff")

    staff_api = Blueprint("staff_api", __name__, url_prefix="/api/staff")

    @staff_api.get("/report")
    def staff_report():
        return jsonify(report=current_user().id)

    @staff_api.get("/admin")
    @roles_required("admin", scope="admin")  # stricter than the blueprint's guard
    def staff_admin():
        return jsonify(staff_admin=True)

    protect_blueprint(staff_api, "staff", scope="profile:read")

    # A blueprint that looks the user up before its views run (e.g. for its templates).
    greeted = Blueprint("greeted", __name__, url_prefix="/greeted")

    @greeted.before_request
    def load_user() -> None:
        current_user()

    @greeted.post("/act")
    @login_required
    def greeted_act() -> str:
        return "acted"

    return [pages, api, staff, staff_api, greeted]


@pytest.fixture(scope="module")
def guarded_server(
    mock_server, redis_url: str, app_url: str, database_url: str
) -> Iterator[RunningApp]:
    """The app plus the blueprints above, on its own port, sharing Redis with `app`.

    Sign in on `app` (the registered callback): the session lives in the shared Redis, and
    the cookie (host-only, any port) works here too.
    """
    flask_app = create_app(base_env(mock_server, redis_url, app_url, database_url))
    for blueprint in guarded_blueprints():
        flask_app.register_blueprint(blueprint)
    port = free_port()
    running = RunningApp(f"http://127.0.0.1:{port}", port, flask_app).start()
    yield running
    running.stop()


@pytest.fixture()
def guarded(guarded_server: RunningApp, app: RunningApp) -> RunningApp:
    """`guarded_server` with a clean Redis and reset mock providers."""
    return guarded_server


def signed_in(app: RunningApp, guarded: RunningApp, mock, **kwargs) -> Browser:
    """Sign in on the shared app, then browse the guarded one with the same cookie."""
    browser = sign_in(app.url, mock, **kwargs)
    browser.app_url = guarded.url
    return browser


def with_staff(env: dict[str, str]) -> dict[str, str]:
    """The app's settings plus its own role `staff` (`flask roles grant` knows only these)."""
    return {**env, "APP_ROLES": "staff"}


def json_get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, allow_redirects=False, timeout=10)


# --- login_required / roles_required / protect_blueprint ---------------------------


@pytest.mark.parametrize("path", ["/guarded/page?x=1&y=%2F", "/guarded/admin", "/staff/"])
def test_signed_out_html_visitor_is_sent_to_login_with_next(guarded, path) -> None:
    response = requests.get(guarded.url + path, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login?")
    assert query(location)["next"] == path


def test_login_comes_back_to_the_guarded_page(released_port, app_url, app_env, mock) -> None:
    flask_app = create_app(app_env)
    for blueprint in guarded_blueprints():
        flask_app.register_blueprint(blueprint)
    running = RunningApp(app_url, released_port, flask_app).start()  # the callback's port
    try:
        browser = Browser(running.url)
        location = browser.get("/guarded/page?x=1").headers["Location"]
        final = browser.login(PROVIDER, next_path=query(location)["next"])
        assert final.status_code == 200
        assert browser.hops[-1] == running.url + "/guarded/page?x=1"
        assert f"page for {browser.me().json()['id']}" in final.text
    finally:
        running.stop()


@pytest.mark.parametrize(
    "path", ["/api/guarded/data", "/api/guarded/admin", "/api/staff/report", "/guarded/page"]
)
def test_signed_out_api_caller_gets_401_json(guarded, path) -> None:
    response = json_get(guarded.url + path, Accept="application/json")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_missing_role_is_403_page_for_html_and_json_for_api(app, guarded, mock) -> None:
    browser = signed_in(app, guarded, mock)
    for path in ("/guarded/admin", "/staff/"):
        response = browser.get(path)
        assert response.status_code == 403, path
        assert response.headers["Content-Type"].startswith("text/html")
        assert "admin page" not in response.text and "staff only" not in response.text
    for path in ("/api/guarded/admin", "/api/staff/report"):
        response = browser.get(path)
        assert response.status_code == 403, path
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"] == "forbidden"
    assert browser.get("/guarded/page").status_code == 200
    assert browser.get("/api/guarded/data").json() == {"user": browser.me().json()["id"]}


def test_roles_granted_by_hand_open_the_guarded_routes(app, guarded, mock, app_env) -> None:
    browser = signed_in(app, guarded, mock)
    user_id = browser.me().json()["id"]
    assert browser.get("/staff/").status_code == 403
    result = cli(with_staff(app_env), "roles", "grant", user_id, "staff")
    assert result.exit_code == 0, result.output
    assert browser.get("/staff/").text == "<p>staff only</p>"
    assert browser.get("/api/staff/report").json() == {"report": user_id}
    assert browser.get("/guarded/admin").status_code == 403  # staff is not admin
    assert cli(app_env, "roles", "grant", user_id, "admin").exit_code == 0
    assert browser.get("/guarded/admin").status_code == 200
    assert browser.get("/api/guarded/admin").json() == {"admin": True}


def test_cookie_authenticated_unsafe_requests_need_csrf(app, guarded, mock, app_env) -> None:
    browser = signed_in(app, guarded, mock)
    user_id = browser.me().json()["id"]
    cli(with_staff(app_env), "roles", "grant", user_id, "staff")
    for path in ("/guarded/act", "/api/guarded/data", "/staff/"):
        refused = browser.http.post(guarded.url + path, timeout=10, allow_redirects=False)
        assert refused.status_code == 403, path
        assert "csrf_failed" in refused.text
        accepted = browser.http.post(
            guarded.url + path, headers={"X-CSRF-Token": browser.csrf_token()}, timeout=10
        )
        assert accepted.status_code == 200, path
    form = browser.http.post(
        guarded.url + "/guarded/act", data={"csrf_token": browser.csrf_token()}, timeout=10
    )
    assert form.text == "acted"


def test_bearer_tokens_on_guarded_routes(app, guarded, mock) -> None:
    browser = signed_in(app, guarded, mock)
    user_id = browser.me().json()["id"]
    token = new_token(browser)["token"]
    assert call(guarded.url, token, "/api/guarded/data").json() == {"user": user_id}
    # A bearer-authenticated POST carries no ambient credential: no CSRF token needed.
    posted = call(guarded.url, token, "/api/guarded/data", method="POST")
    assert posted.status_code == 200 and posted.json() == {"changed": user_id}
    # The token has no admin scope: RFC 6750 insufficient_scope, naming the scope.
    response = call(guarded.url, token, "/api/guarded/admin")
    assert response.status_code == 403
    assert challenge(response) == {
        "realm": "api",
        "error": "insufficient_scope",
        "scope": "admin",
    }
    # Outside /api/* a bearer token is no credential at all.
    for path in ("/guarded/page", "/guarded/scoped", "/staff/"):
        refused = call(guarded.url, token, path)
        assert 400 <= refused.status_code < 500 and refused.status_code != 404, path
        assert "page for" not in refused.text and "scoped page" not in refused.text
        assert "staff only" not in refused.text


def test_protected_api_blueprint_with_a_token_needs_the_role(app, guarded, mock, app_env) -> None:
    browser = signed_in(app, guarded, mock)
    user_id = browser.me().json()["id"]
    token = new_token(browser)["token"]
    response = call(guarded.url, token, "/api/staff/report")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    cli(with_staff(app_env), "roles", "grant", user_id, "staff")
    assert call(guarded.url, token, "/api/staff/report").json() == {"report": user_id}
    garbage = call(guarded.url, "garbage", "/api/staff/report")
    assert garbage.status_code == 401 and challenge(garbage)["error"] == "invalid_token"


def test_csrf_is_checked_even_when_the_user_was_loaded_earlier(app, guarded, mock) -> None:
    browser = signed_in(app, guarded, mock)
    refused = browser.http.post(guarded.url + "/greeted/act", timeout=10)
    assert refused.status_code == 403 and "csrf_failed" in refused.text
    accepted = browser.http.post(
        guarded.url + "/greeted/act", headers={"X-CSRF-Token": browser.csrf_token()}, timeout=10
    )
    assert accepted.text == "acted"


def test_a_views_scope_is_checked_inside_a_protected_blueprint(app, guarded, mock, app_env) -> None:
    browser = signed_in(app, guarded, mock)
    user_id = browser.me().json()["id"]
    for role in ("staff", "admin"):
        assert cli(with_staff(app_env), "roles", "grant", user_id, role).exit_code == 0
    token = new_token(browser, scopes=["profile:read"])["token"]
    assert call(guarded.url, token, "/api/staff/report").status_code == 200
    # The view asks for the admin scope: passing the blueprint's guard is not enough.
    response = call(guarded.url, token, "/api/staff/admin")
    assert response.status_code == 403, response.text
    assert challenge(response)["error"] == "insufficient_scope"
    assert challenge(response)["scope"] == "admin"
    admin_token = new_token(browser, scopes=["profile:read", "admin"])["token"]
    assert call(guarded.url, admin_token, "/api/staff/admin").json() == {"staff_admin": True}
    assert browser.get("/api/staff/admin").json() == {"staff_admin": True}


# --- ADMIN_EMAILS -------------------------------------------------------------------


def roles_of(browser: Browser) -> list[str]:
    return browser.me().json()["roles"]


@needs_verified
def test_admin_emails_grants_admin_to_a_verified_email_case_insensitively(variant, mock) -> None:
    email = VERIFIED_EMAIL
    app = variant(ADMIN_EMAILS=f" someone@else.example , {email.upper()} ")
    admin = sign_in(app.url, mock, provider=VERIFIED)
    assert "admin" in roles_of(admin)
    page = admin.get("/admin")
    assert page.status_code == 200
    assert email in page.text
    users = admin.get("/api/admin/users")
    assert users.status_code == 200
    assert admin.me().json()["id"] in [u["id"] for u in users.json()["users"]]


@needs_verified
def test_admin_pages_are_403_for_others(variant, mock) -> None:
    app = variant(ADMIN_EMAILS=VERIFIED_EMAIL)
    other = sign_in(app.url, mock, persona=FACTS[VERIFIED].other_persona, provider=VERIFIED)
    assert roles_of(other) == ["user"]
    page = other.get("/admin")
    assert page.status_code == 403 and page.headers["Content-Type"].startswith("text/html")
    api = other.get("/api/admin/users")
    assert api.status_code == 403 and api.json()["error"] == "forbidden"
    anonymous = Browser(app.url)
    assert anonymous.get("/admin").status_code == 302
    assert anonymous.get("/api/admin/users").status_code == 401


@pytest.mark.parametrize("provider", PROVIDERS)
def test_admin_emails_ignores_an_unverified_email(variant, mock, provider) -> None:
    email = FACTS[provider].unverified_email(mock.control)  # some providers' always are
    app = variant(ADMIN_EMAILS=email)
    browser = sign_in(app.url, mock, provider=provider)
    me = browser.me().json()
    assert me["email"] == email and me["email_verified"] is False
    assert roles_of(browser) == ["user"]
    assert browser.get("/admin").status_code == 403
    assert browser.get("/api/admin/users").status_code == 403


@needs_verified
def test_admin_role_is_reevaluated_at_each_login(variant, mock, database) -> None:
    email = VERIFIED_EMAIL
    app = variant(ADMIN_EMAILS=email)
    first = sign_in(app.url, mock, provider=VERIFIED)
    assert "admin" in roles_of(first)
    user_id = first.me().json()["id"]
    assert role_grants(database) == [(user_id, "admin", "admin_emails")]
    app = variant(ADMIN_EMAILS=None)  # the address is removed from ADMIN_EMAILS
    second = sign_in(app.url, mock, provider=VERIFIED)
    assert second.me().json()["id"] == user_id
    assert roles_of(second) == ["user"]
    assert role_grants(database) == []
    assert second.get("/admin").status_code == 403
    # The older session is no admin either (403), or was ended (sent to /login).
    assert first.get("/admin").status_code in (302, 403)
    assert first.get("/api/admin/users").status_code in (401, 403)
    app = variant(ADMIN_EMAILS=email)
    assert "admin" in roles_of(sign_in(app.url, mock, provider=VERIFIED))


@needs_verified
def test_removing_an_admin_email_takes_admin_away_at_once(variant, mock, database) -> None:
    email = VERIFIED_EMAIL
    app = variant(ADMIN_EMAILS=email)
    browser = sign_in(app.url, mock, provider=VERIFIED)
    user_id = browser.me().json()["id"]
    token = new_token(browser, scopes=["admin"])["token"]
    assert browser.get("/admin").status_code == 200
    assert call(app.url, token, "/api/admin/users").status_code == 200

    app = variant(ADMIN_EMAILS="someone@else.example")  # a restart without the address
    # No new sign-in: the session and the token lose admin on their very next request.
    assert browser.get("/admin").status_code == 403
    assert browser.get("/api/admin/users").status_code == 403
    assert roles_of(browser) == ["user"]
    assert "admin" not in browser.get("/account").text.split("<dt>Roles</dt>")[1][:40]
    response = call(app.url, token, "/api/admin/users")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    # The grant made at sign-in is kept as a record, and counts only while listed.
    assert role_grants(database) == [(user_id, "admin", "admin_emails")]
    app = variant(ADMIN_EMAILS=email)
    assert call(app.url, token, "/api/admin/users").status_code == 200
    assert "admin" in roles_of(browser)


@needs_verified
def test_an_address_added_to_admin_emails_counts_from_the_next_sign_in(variant, mock) -> None:
    email = VERIFIED_EMAIL
    app = variant(ADMIN_EMAILS=None)
    browser = sign_in(app.url, mock, provider=VERIFIED)
    app = variant(ADMIN_EMAILS=email)
    assert browser.get("/admin").status_code == 403  # as the README says
    again = sign_in(app.url, mock, provider=VERIFIED)
    assert again.get("/admin").status_code == 200
    assert "admin" in roles_of(again)
    assert "admin" in roles_of(browser)  # the sign-in told the other sessions


# --- flask roles grant|revoke ----------------------------------------------------------


def test_cli_grant_survives_the_next_login_and_revoke_removes_it(
    app, mock, app_env, database
) -> None:
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    assert browser.get("/admin").status_code == 403
    assert role_grants(database) == []
    # A provider-verified email, in any case; some providers verify none: then the user id.
    verified = browser.me().json()["email_verified"]
    who = FACTS[PROVIDER].email if verified else user_id
    result = cli(app_env, "roles", "grant", who.upper() if verified else who, "admin")
    assert result.exit_code == 0, result.output
    assert "admin" in result.stdout
    assert role_grants(database) == [(user_id, "admin", "manual")]
    assert browser.get("/admin").status_code == 200
    again = sign_in(app.url, mock)  # re-evaluation at login keeps a hand-granted role
    assert "admin" in roles_of(again)
    assert again.get("/api/admin/users").status_code == 200
    assert role_grants(database) == [(user_id, "admin", "manual")]  # kept by the login
    result = cli(app_env, "roles", "revoke", who, "admin")
    assert result.exit_code == 0, result.output
    assert role_grants(database) == []
    # Existing sessions lose the role at once (403), or are ended (sent to /login).
    assert browser.get("/admin").status_code in (302, 403)
    assert again.get("/api/admin/users").status_code in (401, 403)
    last = sign_in(app.url, mock)
    assert roles_of(last) == ["user"]
    assert last.get("/admin").status_code == 403


@needs_verified
def test_cli_revoke_of_an_admin_emails_role_explains_itself(
    variant, mock, app_env, database
) -> None:
    email = VERIFIED_EMAIL
    app = variant(ADMIN_EMAILS=email)
    browser = sign_in(app.url, mock, provider=VERIFIED)
    user_id = browser.me().json()["id"]
    assert role_grants(database) == [(user_id, "admin", "admin_emails")]
    result = cli({**app_env, "ADMIN_EMAILS": email}, "roles", "revoke", email, "admin")
    assert "ADMIN_EMAILS" in result.stderr
    assert "ADMIN_EMAILS" not in result.stdout
    assert "admin" in roles_of(browser)  # still admin: the address decides
    assert role_grants(database) == [(user_id, "admin", "admin_emails")]


def test_cli_with_an_unknown_email_fails_with_a_message(app, app_env) -> None:
    for command in ("grant", "revoke"):
        result = cli(app_env, "roles", command, "nobody@nowhere.example", "admin")
        assert result.exit_code != 0
        assert "nobody@nowhere.example" in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "pair",
    cases_or_skip(
        SAME_EMAIL_UNVERIFIED_AND_VERIFIED[:1],
        "needs a provider that verifies an email another one shows unverified",
    ),
)
def test_cli_acts_only_on_a_provider_verified_email(app, mock, app_env, database, pair) -> None:
    # e.g. a provider that never verifies an email shows the same address as another does.
    unverified_at, verified_at = pair
    email = FACTS[unverified_at].email
    doubtful = sign_in(app.url, mock, provider=unverified_at)
    doubtful_id = doubtful.me().json()["id"]
    unverified = f"ignored: user {doubtful_id} by {unverified_at} {email} (NOT verified)"
    result = cli(app_env, "roles", "grant", email, "admin")
    assert result.exit_code != 0
    assert unverified in result.stdout.splitlines()
    assert "pass a user id" in result.stderr
    assert role_grants(database) == []
    assert doubtful.get("/admin").status_code == 403
    deleted = cli(app_env, "users", "delete", email, "--yes")
    assert deleted.exit_code != 0 and unverified in deleted.stdout
    assert doubtful.me().status_code == 200

    # A user of the other provider with the same, verified, address is another user: only
    # they match.
    trusted = sign_in(app.url, mock, provider=verified_at)
    trusted_id = trusted.me().json()["id"]
    result = cli(app_env, "roles", "grant", email.upper(), "admin")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    matched = f"matched: user {trusted_id} by {verified_at} {email} (verified)"
    assert matched in lines and unverified in lines
    assert lines.index(matched) < lines.index(next(x for x in lines if "roles user, admin" in x))
    assert role_grants(database) == [(trusted_id, "admin", "manual")]
    assert doubtful.get("/admin").status_code == 403
    assert trusted.get("/admin").status_code == 200

    # An explicit user id selects anyone, and the command says who that is.
    by_id = cli(app_env, "users", "delete", doubtful_id, "--yes")
    assert by_id.exit_code == 0, by_id.output
    assert f"matched user {doubtful_id}" in by_id.stdout
    assert f"  {unverified_at} {email} (NOT verified)" in by_id.stdout.splitlines()
    assert doubtful.me().status_code == 401
    assert trusted.me().status_code == 200


def test_cli_knows_only_the_apps_role_names(app, mock, app_env, database) -> None:
    browser = sign_in(app.url, mock)
    user_id = browser.me().json()["id"]
    for role in ("admn", "Admin", "staff", "user"):
        result = cli(app_env, "roles", "grant", user_id, role)
        assert result.exit_code != 0, role
        assert repr(role) in result.stderr
        assert "Traceback" not in result.output
    assert "known roles are admin" in cli(app_env, "roles", "grant", user_id, "admn").stderr
    assert "APP_ROLES" in cli(app_env, "roles", "grant", user_id, "staff").stderr
    assert role_grants(database) == []
    assert cli(app_env, "roles", "revoke", user_id, "admn").exit_code != 0

    # SECURITY_ROLES and APP_ROLES name the others.
    env = {**app_env, "APP_ROLES": "staff, editor", "SECURITY_ROLES": "admin,auditor"}
    for role in ("staff", "editor", "auditor", "admin"):
        assert cli(env, "roles", "grant", user_id, role).exit_code == 0, role
    assert roles_of(browser) == ["user", "admin", "auditor", "editor", "staff"]
    # A role dropped from APP_ROLES can still be taken away from who has it.
    result = cli(app_env, "roles", "revoke", user_id, "editor")
    assert result.exit_code == 0, result.output
    assert ("editor" in roles_of(browser)) is False
