"""Facebook's deauthorize and data-deletion callbacks: a `signed_request` POSTed by Facebook.

The mock Facebook sends them as Facebook does (`callback_to_app`); others are
built here by hand with hmac. Only a request signed with the App Secret is obeyed; anything
else is a 400, never a 500. Real Redis, a real database, real HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa
from conftest import Browser, database_dump, redis_keys_and_values, rows
from test_account_deletion import assert_nothing_left
from test_api_tokens import execute
from test_rate_limits import LIMIT_ENV, assert_rate_limited_json

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.auth.facebook_callbacks import (
    DELETION_STATUS_DAYS,
    MAX_AGE,
    MAX_FUTURE,
)
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings

from mock_providers.facebook import callback_to_app

PACKAGE = create_app.__module__
OTHERS = [p for p in PROVIDER_CLASSES if p != "facebook"]
needs_another_provider = pytest.mark.skipif(not OTHERS, reason="baked with Facebook only")
ADA_ID = "10229384756102938"  # the mock's Facebook persona "ada"
UNKNOWN_ID = "10000000000000001"
OTHER_UNKNOWN_ID = "10000000000000002"
PATHS = {
    "deauthorize": "/auth/facebook/deauthorize",
    "data_deletion": "/auth/facebook/data-deletion",
}
KINDS = list(PATHS)


# --- helpers ------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_request(payload: object, secret: str, raw: bytes | None = None) -> str:
    """Facebook's format: base64url(HMAC-SHA256(secret, encoded payload)) "." encoded payload."""
    encoded = b64url(raw if raw is not None else json.dumps(payload).encode())
    signature = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()
    return f"{b64url(signature)}.{encoded}"


def payload(user_id: str = ADA_ID, **extra: object) -> dict:
    return {"algorithm": "HMAC-SHA256", "issued_at": int(time.time()), "user_id": user_id, **extra}


def post(app_url: str, kind: str, data: dict | None = None, **kwargs) -> requests.Response:
    return requests.post(f"{app_url}{PATHS[kind]}", data=data, timeout=10, **kwargs)


def sign_in(app_url: str, provider: str = "facebook") -> Browser:
    browser = Browser(app_url)
    final = browser.login(provider)
    assert final.status_code == 200, final.text
    return browser


def stored_user(db: sa.Engine, user_id: str) -> dict | None:
    """The user's database record, with the providers of their identities (in link order)."""
    found = rows(db, "SELECT * FROM users WHERE id = :id", id=user_id)
    if not found:
        return None
    providers = rows(
        db, "SELECT provider FROM identities WHERE user_id = :id ORDER BY id", id=user_id
    )
    return {**found[0]._asdict(), "providers": [p for (p,) in providers]}


def token_exists(db: sa.Engine, user_id: str, provider: str) -> bool:
    query = "SELECT 1 FROM provider_tokens WHERE user_id = :user_id AND provider = :provider"
    return bool(rows(db, query, user_id=user_id, provider=provider))


def identity_exists(db: sa.Engine, provider: str, subject: str) -> bool:
    query = "SELECT 1 FROM identities WHERE provider = :provider AND subject = :subject"
    return bool(rows(db, query, provider=provider, subject=subject))


def deletion_request(db: sa.Engine, code: str) -> sa.Row | None:
    found = rows(db, "SELECT * FROM data_deletion_requests WHERE confirmation_code = :c", c=code)
    return found[0] if found else None


# --- refused callbacks ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_mock_facebook_callbacks_signed_wrongly_are_400(app, mock, kind) -> None:
    sign_in(app.url)
    for options in ({"tamper": True}, {"algorithm": "HS512"}, {"algorithm": "none"}):
        answer = callback_to_app(mock.control, kind, **options)
        assert answer["status"] == 400, (options, answer)
        assert answer["body"]["error"] == "invalid_signed_request"


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_is_400_never_500(app, app_env, kind) -> None:
    secret = app_env["FACEBOOK_CLIENT_SECRET"]
    deep = signed_request(None, secret, raw=b"[" * 5000 + b"]" * 5000)
    forms = [
        None,  # no signed_request at all
        {"signed_request": ""},
        {"signed_request": "garbage"},
        {"signed_request": "."},
        {"signed_request": "a.b"},
        {"signed_request": "!!!.???"},
        {"signed_request": "é.é"},
        {"signed_request": signed_request(payload(), secret).split(".")[1]},  # payload only
        {"signed_request": signed_request(payload(), "another-secret")},
        {"signed_request": signed_request(payload(algorithm="HMAC-SHA1"), secret)},
        {"signed_request": signed_request({"issued_at": 1, "user_id": ADA_ID}, secret)},
        {"signed_request": signed_request(None, secret, raw=b"not json")},
        {"signed_request": signed_request(None, secret, raw=b"\xff\xfe")},
        {"signed_request": signed_request(["HMAC-SHA256"], secret)},
        {"signed_request": signed_request({"algorithm": "HMAC-SHA256"}, secret)},  # no user_id
        {"signed_request": signed_request(payload(user_id="ada"), secret)},
        {"signed_request": signed_request(payload(user_id=None), secret)},
        {"signed_request": signed_request({"algorithm": "HMAC-SHA256", "user_id": ADA_ID}, secret)},
        {"signed_request": signed_request(payload(issued_at=str(int(time.time()))), secret)},
        {"signed_request": signed_request(payload(issued_at=True), secret)},
        {"signed_request": signed_request(payload(issued_at=None), secret)},
        {"signed_request": signed_request(payload(issued_at=int(time.time()) - 86400), secret)},
        {"signed_request": deep},  # nesting deep enough to break a recursive parser
    ]
    for form in forms:
        response = post(app.url, kind, form)
        assert response.status_code == 400, (form, response.status_code, response.text[:200])
        assert response.json()["error"] == "invalid_signed_request", form
    as_json = post(app.url, kind, json={"signed_request": signed_request(payload(), secret)})
    assert as_json.status_code == 400


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_user_is_200_with_nothing_to_delete(app, mock, database, app_env, kind) -> None:
    browser = sign_in(app.url)
    me = browser.me().json()
    by_mock = callback_to_app(mock.control, kind, user_id=UNKNOWN_ID)
    assert by_mock["status"] == 200, by_mock
    by_hand = post(
        app.url,
        kind,
        {"signed_request": signed_request(payload(UNKNOWN_ID), app_env["FACEBOOK_CLIENT_SECRET"])},
    )
    assert by_hand.status_code == 200, by_hand.text
    assert browser.me().json()["identities"] == me["identities"]
    assert identity_exists(database, "facebook", ADA_ID)
    assert token_exists(database, me["id"], "facebook")
    assert stored_user(database, me["id"])["providers"] == ["facebook"]


# --- deauthorize ----------------------------------------------------------------------


def test_deauthorize_drops_the_link_and_its_tokens_but_keeps_the_user(
    app, mock, database, app_env
) -> None:
    browser = sign_in(app.url, OTHERS[0]) if OTHERS else sign_in(app.url)
    if OTHERS:
        assert browser.login("facebook").status_code == 200
    me = browser.me().json()
    assert "facebook" in [i["provider"] for i in me["identities"]]
    assert token_exists(database, me["id"], "facebook")
    secret = app_env["FACEBOOK_CLIENT_SECRET"]

    response = post(app.url, "deauthorize", {"signed_request": signed_request(payload(), secret)})
    assert response.status_code == 200, response.text

    assert not token_exists(database, me["id"], "facebook")
    assert not identity_exists(database, "facebook", ADA_ID)
    user = stored_user(database, me["id"])
    assert user is not None  # the account stays
    assert user["providers"] == OTHERS[:1]
    for other in OTHERS[:1]:
        assert token_exists(database, me["id"], other)
    # The signed-in person sees it too (if the app chose to keep their session at all).
    after = browser.me()
    assert after.status_code in (200, 401)
    if after.status_code == 200:
        assert [i["provider"] for i in after.json()["identities"]] == OTHERS[:1]
    # A repeat (Facebook retries) finds nobody: still 200.
    assert callback_to_app(mock.control, "deauthorize")["status"] == 200


# --- data deletion ------------------------------------------------------------------


def test_data_deletion_of_a_facebook_only_user_deletes_the_account(
    app, mock, redis_db, database, app_env
) -> None:
    browser = sign_in(app.url)
    other_device = sign_in(app.url)
    me = browser.me().json()
    token = browser.http.post(
        f"{app.url}/api/tokens",
        json={"name": "script", "scopes": ["profile:read"]},
        headers={"X-CSRF-Token": browser.csrf_token()},
        timeout=10,
    ).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{app.url}/api/me", headers=bearer, timeout=10).status_code == 200

    answer = callback_to_app(mock.control, "data_deletion", user="ada")
    assert answer["status"] == 200, answer
    body = answer["body"]
    assert set(body) == {"url", "confirmation_code"}
    code = body["confirmation_code"]
    assert code.isalnum() and len(code) >= 8
    assert body["url"] == f"{app_env['PUBLIC_URL']}/auth/facebook/data-deletion/{code}"

    assert browser.me().status_code == 401
    assert other_device.me().status_code == 401
    assert requests.get(f"{app.url}/api/me", headers=bearer, timeout=10).status_code == 401
    assert me["email"] and [i["subject"] for i in me["identities"]] == [ADA_ID]
    assert_nothing_left(redis_db, database, me)  # in Redis and in the database
    request = deletion_request(database, code)
    assert request.provider == "facebook" and request.status == "completed"
    assert request.found  # there was an account, and it is gone

    status = requests.get(body["url"], timeout=10)
    assert status.status_code == 200
    assert code in status.text
    assert "Ada" not in status.text and me["email"] not in status.text


@needs_another_provider
def test_data_deletion_keeps_an_account_that_signs_in_another_way(
    app, mock, redis_db, database, app_env
) -> None:
    other = OTHERS[0]
    browser = sign_in(app.url, other)
    assert browser.login("facebook").status_code == 200
    me = browser.me().json()
    secret = app_env["FACEBOOK_CLIENT_SECRET"]
    response = post(app.url, "data_deletion", {"signed_request": signed_request(payload(), secret)})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"url", "confirmation_code"}

    user = stored_user(database, me["id"])
    assert user is not None
    assert user["providers"] == [other]
    assert not token_exists(database, me["id"], "facebook")
    assert not identity_exists(database, "facebook", ADA_ID)
    assert token_exists(database, me["id"], other)
    assert deletion_request(database, response.json()["confirmation_code"]).found
    # Nothing that came from Facebook stays: not even the profile picture it gave.
    assert "/facebook/" not in (user["avatar_url"] or ""), user["avatar_url"]
    assert ADA_ID.encode() not in redis_keys_and_values(redis_db)[1]
    assert ADA_ID.encode() not in database_dump(database)
    after = browser.me()
    if after.status_code == 200:  # still signed in: without Facebook
        assert [i["provider"] for i in after.json()["identities"]] == [other]
    again = sign_in(app.url, other)
    assert again.me().json()["id"] == me["id"]
    assert [i["provider"] for i in again.me().json()["identities"]] == [other]


def test_data_deletion_status_page(app, mock, redis_db, database) -> None:
    answer = callback_to_app(mock.control, "data_deletion", user_id=UNKNOWN_ID)
    assert answer["status"] == 200
    url = answer["body"]["url"]
    code = answer["body"]["confirmation_code"]
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    assert f'<code id="code">{code}</code>' in page.text
    request = deletion_request(database, code)
    assert request.status == "completed" and not request.found  # nobody had that id
    # It is a lasting record: Facebook may check it long after, whatever happened to Redis.
    redis_db.flushall()
    after_flush = requests.get(url, timeout=10)
    assert after_flush.status_code == 200
    assert f'<code id="code">{code}</code>' in after_flush.text
    for unknown in ("0123456789abcdef0123", code[:-1], "..%2f..%2fetc", "x" * 100):
        response = requests.get(f"{app.url}/auth/facebook/data-deletion/{unknown}", timeout=10)
        assert response.status_code == 404, unknown
    # After DELETION_STATUS_DAYS the page is gone, and the next request forgets the record.
    long_ago = int(time.time()) - (DELETION_STATUS_DAYS + 1) * 24 * 3600
    query = "UPDATE data_deletion_requests SET requested_at = :at WHERE confirmation_code = :c"
    assert execute(database, query, at=long_ago, c=code) == 1
    assert requests.get(url, timeout=10).status_code == 404
    newer = callback_to_app(mock.control, "data_deletion", user_id=OTHER_UNKNOWN_ID)["body"]
    assert deletion_request(database, code) is None
    assert deletion_request(database, newer["confirmation_code"]) is not None


# --- repeats and old requests ---------------------------------------------------------


def deletion_rows(db: sa.Engine) -> list[str]:
    return [c for (c,) in rows(db, "SELECT confirmation_code FROM data_deletion_requests")]


def facebook_subjects(db: sa.Engine) -> list[str]:
    return [s for (s,) in rows(db, "SELECT subject FROM identities WHERE provider = 'facebook'")]


def test_a_repeated_deauthorize_does_nothing_twice(app, mock, database) -> None:
    """A retry of the same signed_request, after the person linked Facebook again, must not
    unlink them again."""
    sign_in(app.url)
    first = callback_to_app(mock.control, "deauthorize")
    assert first["status"] == 200, first
    assert facebook_subjects(database) == []
    again = sign_in(app.url)  # the person comes back and signs in with Facebook
    assert facebook_subjects(database) == [ADA_ID]

    repeat = callback_to_app(mock.control, "deauthorize", signed_request=first["signed_request"])
    assert repeat["status"] == 200 and repeat["body"] == first["body"], repeat
    assert facebook_subjects(database) == [ADA_ID]
    assert again.me().status_code == 200
    assert [i["provider"] for i in again.me().json()["identities"]] == ["facebook"]


def test_a_repeated_data_deletion_gives_the_same_code_and_deletes_nothing_new(
    app, mock, database
) -> None:
    sign_in(app.url)
    first = callback_to_app(mock.control, "data_deletion")
    assert first["status"] == 200, first
    code = first["body"]["confirmation_code"]
    assert deletion_request(database, code).found
    returning = sign_in(app.url)  # a new account, made after the deletion
    me = returning.me().json()

    repeat = callback_to_app(mock.control, "data_deletion", signed_request=first["signed_request"])
    assert repeat["status"] == 200, repeat
    assert repeat["body"] == first["body"]  # the same confirmation code and status URL
    assert deletion_rows(database) == [code]  # one record, still saying the data was found
    assert deletion_request(database, code).found
    assert stored_user(database, me["id"]) is not None  # the new account is untouched
    assert returning.me().status_code == 200
    events = rows(database, "SELECT 1 FROM audit_events WHERE event = 'facebook_data_deletion'")
    assert len(events) == 1


def test_concurrent_copies_of_one_data_deletion_make_one_record(app, mock, database) -> None:
    sign_in(app.url)
    first = callback_to_app(mock.control, "data_deletion", user_id=UNKNOWN_ID)
    database_codes = deletion_rows(database)
    other = signed_request(payload(OTHER_UNKNOWN_ID), mock.settings.client_secret("facebook"))

    def send(_: int) -> requests.Response:
        return post(app.url, "data_deletion", {"signed_request": other})

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(send, range(6)))
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    assert len({a.json()["confirmation_code"] for a in answers}) == 1
    assert len(deletion_rows(database)) == len(database_codes) + 1
    assert first["body"]["confirmation_code"] in deletion_rows(database)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("age", "accepted"),
    [(MAX_AGE + 60, False), (-(MAX_FUTURE + 60), False), (MAX_AGE - 60, True), (0, True)],
)
def test_issued_at_must_be_recent(app, mock, database, kind, age, accepted) -> None:
    sign_in(app.url)
    answer = callback_to_app(mock.control, kind, age=age)
    if not accepted:
        assert answer["status"] == 400, answer
        assert answer["body"]["error"] == "invalid_signed_request"
        reason = "in the future" if age < 0 else f"more than {MAX_AGE // 60} minutes ago"
        assert reason in answer["body"]["message"]
        assert facebook_subjects(database) == [ADA_ID]  # nothing was done
        assert deletion_rows(database) == []
    else:
        assert answer["status"] == 200, answer
        assert facebook_subjects(database) == []


def test_a_repeat_stays_answered_after_the_window(app, mock, database) -> None:
    """A request handled in time keeps its answer when it comes again, however late."""
    sign_in(app.url)
    first = {kind: callback_to_app(mock.control, kind, age=MAX_AGE - 3) for kind in KINDS}
    assert {kind: answer["status"] for kind, answer in first.items()} == dict.fromkeys(KINDS, 200)
    time.sleep(3.5)  # now the same requests are older than MAX_AGE
    for kind, answer in first.items():
        late = callback_to_app(mock.control, kind, signed_request=answer["signed_request"])
        assert late["status"] == 200 and late["body"] == answer["body"], late
    # A never-seen request that old is still refused. (Another user: for Ada, the mock would
    # sign the very same bytes again, a repeat.)
    stale = callback_to_app(mock.control, "data_deletion", user_id=UNKNOWN_ID, age=MAX_AGE + 1)
    assert stale["status"] == 400, stale


# --- the doctor lists both URLs ---------------------------------------------------------


def test_doctor_lists_both_callback_urls(
    project_env, app_env, app_url, mock, redis_db, tmp_path: Path
) -> None:
    env = {**project_env, **app_env}
    # Only loopback traffic: every URL the doctor may fetch is the mock, our Redis or our
    # database (or it is a local SQLite file).
    for name, value in app_env.items():
        if "://" in value and not value.startswith("sqlite:///"):
            assert urlsplit(value).hostname == "127.0.0.1", name
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", PACKAGE, "auth", "doctor", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    facebook = json.loads(result.stdout)["providers"]["facebook"]
    assert facebook["enabled"] is True
    assert facebook["other_urls"] == {
        "Deauthorize callback URL": f"{app_url}/auth/facebook/deauthorize",
        "Data deletion request URL": f"{app_url}/auth/facebook/data-deletion",
    }
    human = subprocess.run(
        [sys.executable, "-m", "flask", "--app", PACKAGE, "auth", "doctor"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"Deauthorize callback URL: {app_url}/auth/facebook/deauthorize" in human.stdout
    assert f"Data deletion request URL: {app_url}/auth/facebook/data-deletion" in human.stdout


# --- a limit per IP, generous (moved here from test_rate_limits.py) ----------------------


def test_the_limit_is_the_documented_one_and_a_bad_one_is_named(app_env) -> None:
    defaults = {k: v for k, v in app_env.items() if k != "FACEBOOK_CALLBACK_RATE_LIMIT"}
    assert load_settings(defaults).facebook_callback_rate_limit == "300 per minute"
    with pytest.raises(SettingsError) as raised:
        create_app({**app_env, "FACEBOOK_CALLBACK_RATE_LIMIT": "-1/minute"})
    (problem,) = raised.value.problems
    assert problem.startswith("FACEBOOK_CALLBACK_RATE_LIMIT") and "'-1/minute'" in problem


def test_callbacks_are_limited_per_ip(variant, app_env, redis_db) -> None:
    app = variant(FACEBOOK_CALLBACK_RATE_LIMIT="2 per minute", **LIMIT_ENV)

    def unknown_user() -> dict[str, str]:
        secret = app_env["FACEBOOK_CLIENT_SECRET"]
        return {"signed_request": signed_request(payload(UNKNOWN_ID), secret)}

    for kind in KINDS:  # each its own counter
        headers = {"X-Forwarded-For": "198.51.100.40"}
        for _ in range(2):
            answer = post(app.url, kind, unknown_user(), headers=headers)
            assert answer.status_code == 200, answer.text
        refused = post(app.url, kind, unknown_user(), headers=headers)
        # Facebook's servers get JSON, as for every other error of these callbacks.
        assert assert_rate_limited_json(refused)["message"] == (
            "Too many callbacks from this address."
        )
        other = post(app.url, kind, unknown_user(), headers={"X-Forwarded-For": "198.51.100.41"})
        assert other.status_code == 200
