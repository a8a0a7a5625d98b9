"""Error pages that say what to do, and logs that say what happened without leaking secrets.

Development pages carry the details that help fix configuration; production pages carry
only a reference id, which is also in the log line. Logs are JSON lines in production,
readable lines in development, and scrubbed of tokens, codes and verifiers even when a
library logs them at DEBUG.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from conftest import (
    FACTS,
    Browser,
    cases_or_skip,
    gunicorn_command,
    issuer_param,
    query,
    run_server,
)
from flask import request

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.logs import is_notable, redact
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

PACKAGE = "{{ cookiecutter.package_name }}"
PROVIDERS = list(PROVIDER_CLASSES)
PKCE_PROVIDERS = [name for name, cls in PROVIDER_CLASSES.items() if cls.uses_pkce]
# Providers whose mock signs ID tokens (OpenID Connect), dated by its clock.
ID_TOKENS = [name for name in PROVIDERS if FACTS[name].issuer is not None]
JSON = {"Accept": "application/json"}
REQUEST_ID = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


def send_secure_cookies_over_http(browser: Browser) -> None:
    """Production cookies are Secure; let this test client send them to http://127.0.0.1."""
    for cookie in browser.http.cookies:
        cookie.secure = False


def reference_of(response: requests.Response) -> str:
    if response.headers["Content-Type"].startswith("application/json"):
        return response.json()["reference"]
    found = re.search(r'<code id="reference">([0-9a-f]+)</code>', response.text)
    assert found, response.text
    return found.group(1)


def logged_references(caplog) -> dict[str, logging.LogRecord]:
    return {
        record.fields["reference"]: record
        for record in caplog.records
        if isinstance(getattr(record, "fields", None), dict) and "reference" in record.fields
    }


# --- redact() -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        (
            "GET /auth/example/callback?code=6f3a9c1d2e&state=Zx81kQ HTTP/1.1",
            ["6f3a9c1d2e", "Zx81kQ"],
        ),
        ("redirect_uri=http%3A%2F%2Fa&code=4%2F0AeanS0b1c2&scope=email", ["4%2F0AeanS0b1c2"]),
        ("Using code_verifier: 'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ3'", ["aB3dE5fG7h"]),
        ("client_id=abc&client_secret=0123456789abcdef0123&grant_type=x", ["0123456789abcdef0123"]),
        ("Authorization: Bearer ya29.a0AfH6SMBx-secret_value", ["a0AfH6SMBx", "secret_value"]),
        ("Authorization: Basic T3YyM2xpOnNlY3JldA==", ["T3YyM2xpOnNlY3JldA=="]),
        ("{'access_token': 'tok-12345678', 'refresh_token': 'ref-87654321'}", ["12345678", "8765"]),
        ('{"id_token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "x": 1}', ["eyJhbGciOi"]),
        ("token gho_16C7e42F292c6912E7710c838347Ae178B4a refused", ["16C7e42F292c6912E77"]),
        ("ghu_abcdefgh12345678 and ghr_abcdefgh12345678", ["abcdefgh12345678"]),
        ("fb_exchange_token=EAABwzLixnjYBO1234&appsecret_proof=9f8e7d6c", ["EAABwz", "9f8e7d6c"]),
        ("user token EAAGm0PX4ZCpsBAKrandomtoken1234 expired", ["Krandomtoken1234"]),
        ("Cookie: __Host-session=Wq1tY8lP0d9sK3mZ; theme=dark", ["Wq1tY8lP0d9sK3mZ"]),
        ("Set-Cookie: session=Wq1tY8lP0d9sK3mZ; HttpOnly; Path=/", ["Wq1tY8lP0d9sK3mZ"]),
        ("refresh 1//0gLq8sWm3-xYzAbCdEf failed", ["0gLq8sWm3-xYzAbCdEf"]),
        ("nonce=n-0S6_WzA2Mj&password=hunter2", ["n-0S6_WzA2Mj", "hunter2"]),
    ],
)
def test_redact_removes_secrets(text: str, secrets: list[str]) -> None:
    cleaned = redact(text)
    assert "[redacted]" in cleaned
    for secret in secrets:
        assert secret not in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "GET /login/example 302",
        "code_challenge_method=S256&response_type=code",
        "app ready env=production providers=one,two,three",
    ],
)
def test_redact_keeps_ordinary_text(text: str) -> None:
    assert redact(text) == text


# --- development pages: what went wrong and how to fix it ---------------------------


def test_redirect_uri_mismatch_shows_the_redirect_uri_the_app_sent(browser, provider, app) -> None:
    cls = PROVIDER_CLASSES[provider]
    sent = query(browser.get(f"/login/{provider}").headers["Location"])
    answered = browser.start_login(provider)  # the provider's callback, as to what it says
    params = {"error": "redirect_uri_mismatch", "state": query(answered)["state"]}
    params.update(issuer_param(answered))
    response = browser.get(f"/auth/{provider}/callback", params=params, headers=JSON)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "provider_error"
    assert body["details"]["redirect_uri"] == sent["redirect_uri"]
    assert sent["redirect_uri"] == f"{app.url}/auth/{provider}/callback"
    assert cls.console_url in body["hint"] and f"/auth/{provider}/callback" in body["hint"]
    assert body["reference"]
    # The same as a page, with a "Try again" link to a fresh login.
    answered = browser.start_login(provider)
    params["state"] = query(answered)["state"]
    page = browser.get(f"/auth/{provider}/callback", params=params)
    assert page.status_code == 400
    assert f"<code>{sent['redirect_uri']}</code>" in page.text
    assert f'id="retry" href="/login/{provider}"' in page.text
    assert "Traceback" not in page.text


def test_wrong_client_credentials_name_the_variables(variant, mock) -> None:
    wrong = {f"{cls.env_prefix}_CLIENT_SECRET": "0" * 32 for cls in PROVIDER_CLASSES.values()}
    app = variant(**wrong)
    for provider, cls in PROVIDER_CLASSES.items():
        browser = Browser(app.url)
        response = browser.get(browser.start_login(provider), headers=JSON)
        body = response.json()
        assert response.status_code == 400 and body["error"] == "token_error", body
        assert body["details"]["provider_error"] in (
            "incorrect_client_credentials",
            "invalid_client",
        )
        assert f"{cls.env_prefix}_CLIENT_ID" in body["hint"]
        assert f"{cls.env_prefix}_CLIENT_SECRET" in body["hint"]
        assert cls.console_url in body["hint"]
        assert "0" * 32 not in response.text  # the secret itself is never shown


def test_a_state_mismatch_lists_the_likely_causes(browser, provider) -> None:
    browser.start_login(provider)  # a login attempt whose state we do not send back
    response = browser.get(
        f"/auth/{provider}/callback", params={"code": "x", "state": "other-tab"}, headers=JSON
    )
    body = response.json()
    assert response.status_code == 400 and body["error"] == "invalid_state"
    hint = body["hint"].lower()
    assert "cookies" in hint  # blocked cookies
    assert "15 minutes" in hint  # an expired attempt
    assert "tab" in hint  # a second tab


@pytest.mark.parametrize("provider", cases_or_skip(ID_TOKENS, "no provider here signs ID tokens"))
def test_an_id_token_issued_in_the_future_reports_the_clock_skew(browser, mock, provider) -> None:
    mock.control.switch(provider, clock_skew=600)
    response = browser.get(browser.start_login(provider), headers=JSON)
    body = response.json()
    assert response.status_code == 400 and body["error"] == "invalid_id_token"
    assert "issued in the future" in body["details"]["description"]
    assert abs(body["details"]["clock_skew_seconds"] - 600) <= 5
    assert "clock" in body["hint"]
    assert browser.me().status_code == 401


# --- production pages: no internals, a reference that is in the log -----------------


def test_production_errors_show_no_details_and_log_their_reference(variant, mock, caplog) -> None:
    caplog.set_level(logging.INFO)
    app = variant(APP_ENV="production")
    for provider in PROVIDERS:
        browser = Browser(app.url)
        # A JSON error: the same body as in development, minus the details.
        browser.start_login(provider)
        response = browser.get(
            f"/auth/{provider}/callback", params={"code": "x", "state": "y"}, headers=JSON
        )
        body = response.json()
        assert response.status_code == 400
        assert set(body) == {"error", "message", "hint", "reference"}
        logged = logged_references(caplog)
        assert body["reference"] in logged
        assert f"ref={body['reference']}" in logged[body["reference"]].getMessage()
        # A 502 page: "Try again", a reference, and nothing about the exception.
        mock.control.switch(provider, token_http_status=503)
        callback = browser.start_login(provider)
        send_secure_cookies_over_http(browser)
        page = browser.finish_login(callback)
        mock.control.reset()
        assert page.status_code == 502
        assert 'data-error="provider_unavailable"' in page.text
        assert f'id="retry" href="/login/{provider}"' in page.text
        assert "<details" not in page.text and "exception" not in page.text
        assert not re.search(r"\w+(Error|Exception)\b", page.text)  # no exception names
        reference = reference_of(page)
        record = logged_references(caplog)[reference]
        assert record.levelno == logging.WARNING and record.fields["status"] == 502
        assert record.fields["error"] == "provider_unavailable"


def test_an_unexpected_error_never_shows_a_traceback(variant, caplog) -> None:
    caplog.set_level(logging.INFO)
    app = variant(APP_ENV="production")

    def boom() -> str:
        raise RuntimeError("failed while holding code=SECRETCODE123 for ya29.leakytoken99")

    app.app.add_url_rule("/boom", "boom", boom)  # before its first request
    for headers in ({}, JSON):
        response = requests.get(f"{app.url}/boom", headers=headers, timeout=10)
        assert response.status_code == 500
        for internal in ("Traceback", "RuntimeError", "SECRETCODE123", "leakytoken99", "boom()"):
            assert internal not in response.text
        assert "internal_error" in response.text
        record = logged_references(caplog)[reference_of(response)]
        assert record.levelno == logging.ERROR
        # The log keeps the traceback for the operator, scrubbed.
        assert "RuntimeError" in record.exc_text and "Traceback" in record.exc_text
        assert "SECRETCODE123" not in record.exc_text and "leakytoken99" not in record.exc_text
    assert "SECRETCODE123" not in caplog.text and "leakytoken99" not in caplog.text


# --- request ids ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/healthz", "/nope", "/api/me", "/login/nope"])
def test_request_ids_are_echoed_kept_when_safe_and_replaced_when_not(browser, path) -> None:
    generated = browser.get(path).headers["X-Request-ID"]
    assert REQUEST_ID.match(generated)
    assert browser.get(path).headers["X-Request-ID"] != generated
    for safe in ("abc-123.DEF_4", "a" * 64, "5f0c1f0e-8b7a-4d2c-9e6a-3b1d7f4c2a9e"):
        assert browser.get(path, headers={"X-Request-ID": safe}).headers["X-Request-ID"] == safe
    for unsafe in ("a" * 65, "a b", "<script>", "x;y", "../../etc", '"quoted"', "é"):
        echoed = browser.get(path, headers={"X-Request-ID": unsafe}).headers["X-Request-ID"]
        assert REQUEST_ID.match(echoed), (unsafe, echoed)


# --- log lines --------------------------------------------------------------------------


def test_development_log_lines_are_readable_with_the_request_id(variant, caplog) -> None:
    caplog.set_level(logging.INFO)
    app = variant()
    response = requests.get(
        f"{app.url}/auth/{PROVIDERS[0]}/callback?code=SECRETCODE123&state=y",
        headers={"X-Request-ID": "dev-request-1"},
        timeout=10,
    )
    assert response.status_code == 400
    reference = reference_of(response)
    lines = [line for line in caplog.text.splitlines() if "[dev-request-1]" in line]
    (error_line,) = [line for line in lines if f"ref={reference}" in line]
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ", error_line)
    # The line names the failure: a reader must not have to look the reference up.
    assert "invalid_state" in error_line, error_line
    for line in caplog.text.splitlines():
        assert not line.lstrip().startswith("{"), line  # not JSON
    assert "SECRETCODE123" not in caplog.text


@pytest.mark.skipif(not PKCE_PROVIDERS, reason="baked without a PKCE provider")
def test_authlib_debug_output_is_scrubbed_in_process(variant, mock, caplog) -> None:
    provider = PKCE_PROVIDERS[0]
    caplog.set_level(logging.DEBUG)
    app = variant()
    authlib = logging.getLogger("authlib")
    level = authlib.level
    authlib.setLevel(logging.DEBUG)  # after create_app, which quiets it
    try:
        browser = Browser(app.url)
        assert browser.login(provider).status_code == 200
    finally:
        authlib.setLevel(level)
    verifier_lines = [r.getMessage() for r in caplog.records if "code_verifier" in r.getMessage()]
    assert verifier_lines, "Authlib logged no code_verifier line at DEBUG"
    for line in verifier_lines:
        assert re.fullmatch(r"Using code_verifier: \[redacted\]", line), line
    # werkzeug's request log of the callback is there too, without its code and state.
    callback_lines = [r.getMessage() for r in caplog.records if "/callback?" in r.getMessage()]
    assert callback_lines and all("code=[redacted]" in x for x in callback_lines)
    captured = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    minted = mock.control.minted()
    assert minted
    leaked = [secret for secret in minted if secret in captured]
    assert not leaked, f"{len(leaked)} minted secrets in the log"
    assert browser.cookie() not in captured


WSGI_MODULE = """
import logging

from {package} import create_app

app = create_app()
logging.getLogger("authlib").setLevel(logging.DEBUG)


def boom():
    raise RuntimeError("failed while holding code=SECRETCODE123")


app.add_url_rule("/boom", "boom", boom)
"""


@contextmanager
def gunicorn(env: dict[str, str], workdir: Path, port: int, url: str) -> Iterator[Path]:
    """gunicorn serving create_app() with Authlib at DEBUG; yields the file with its output."""
    (workdir / "debug_wsgi.py").write_text(WSGI_MODULE.format(package=PACKAGE))
    env = {**env, "PYTHONPATH": f"{workdir}:{env['PYTHONPATH']}"}
    command = gunicorn_command(port, "--workers", "1", app="debug_wsgi:app")
    with run_server(command, env, workdir, url) as log_path:
        yield log_path


@pytest.mark.skipif(not PKCE_PROVIDERS, reason="baked without a PKCE provider")
def test_production_logs_are_json_lines_with_request_id_provider_status_and_duration(
    released_port, project_env, app_env, app_url, tmp_path, mock
) -> None:
    provider = PKCE_PROVIDERS[0]
    env = {**project_env, **app_env, "APP_ENV": "production"}
    with gunicorn(env, tmp_path, released_port, app_url) as log_path:
        browser = Browser(app_url)
        callback = browser.start_login(provider)
        send_secure_cookies_over_http(browser)
        response = browser.http.get(
            callback, headers={"X-Request-ID": "callback-1"}, allow_redirects=False, timeout=10
        )
        assert response.status_code == 302, response.text
        assert response.headers["X-Request-ID"] == "callback-1"
        boom = requests.get(f"{app_url}/boom", timeout=10)
        assert boom.status_code == 500
        assert "Traceback" not in boom.text and "SECRETCODE123" not in boom.text
        failed = requests.get(
            f"{app_url}/auth/{provider}/callback?code=SECRETCODE456&state=x",
            headers={"X-Request-ID": "failed-1"},
            timeout=10,
        )
        assert failed.status_code == 400
    output = log_path.read_text()
    entries = []
    for line in output.splitlines():
        if re.match(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line):
            continue  # gunicorn's own start/stop lines
        entry = json.loads(line)  # everything else: one JSON object per line
        assert {"time", "level", "logger", "request_id"} <= set(entry)
        entries.append(entry)

    (line,) = [
        e for e in entries if e.get("event") == "request" and e["request_id"] == "callback-1"
    ]
    assert line["path"] == f"/auth/{provider}/callback"
    assert line["provider"] == provider
    assert line["status"] == 302
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] > 0
    assert any(
        e.get("event") == "login_succeeded" and e.get("provider") == provider for e in entries
    )
    (failure,) = [
        e for e in entries if e.get("event") == "request" and e["request_id"] == "failed-1"
    ]
    assert failure["status"] == 400 and failure["provider"] == provider
    assert any(e.get("reference") == reference_of(failed) for e in entries)

    (error,) = [e for e in entries if e.get("reference") == reference_of(boom)]
    assert error["level"] == "error" and "RuntimeError" in error["exception"]
    verifier_lines = [e["message"] for e in entries if "code_verifier" in e.get("message", "")]
    assert verifier_lines == ["Using code_verifier: [redacted]"]
    for secret in ["SECRETCODE123", "SECRETCODE456", *mock.control.minted()]:
        assert secret not in output


# --- which requests get a line ------------------------------------------------------------


def request_lines(caplog) -> set[tuple[str, str, int]]:
    return {
        (record.fields["method"], record.fields["path"], record.fields["status"])
        for record in caplog.records
        if isinstance(getattr(record, "fields", None), dict)
        and record.fields.get("event") == "request"
    }


@pytest.mark.parametrize("mode", ["notable", "all", "off"])
def test_request_log_lines_are_the_ones_request_log_asks_for(variant, caplog, mode) -> None:
    caplog.set_level(logging.INFO)
    app = variant(APP_ENV="production", REQUEST_LOG=mode)
    browser = Browser(app.url)
    callback = browser.start_login(PROVIDERS[0])
    send_secure_cookies_over_http(browser)
    assert browser.finish_login(callback).status_code == 200
    send_secure_cookies_over_http(browser)
    caplog.clear()

    assert browser.me().status_code == 200  # routine reads
    assert browser.get("/healthz").status_code == 200
    signed_out = requests.get(f"{app.url}/api/me", timeout=10)  # a failure
    assert signed_out.status_code == 401
    assert browser.get("/login").status_code == 200  # a step of the sign-in flow

    routine = {("GET", "/api/me", 200), ("GET", "/healthz", 200)}
    notable = {("GET", "/api/me", 401), ("GET", "/login", 200)}
    expected = {"notable": notable, "all": routine | notable, "off": set()}[mode]
    assert request_lines(caplog) == expected
    # Whatever REQUEST_LOG says, a failure keeps its own line with its reference.
    assert reference_of(signed_out) in logged_references(caplog)


def test_notable_requests_are_failures_changes_slow_ones_and_sign_in_steps(app_env) -> None:
    app = create_app({**app_env, "APP_ENV": "production"})
    provider = PROVIDERS[0]
    cases = [
        ("GET", "/api/me", 200, 0.01, False),
        ("HEAD", "/", 200, 0.01, False),
        ("GET", "/healthz", 200, 0.01, False),
        ("GET", "/api/me", 401, 0.01, True),
        ("GET", "/no-such-page", 404, 0.01, True),
        ("GET", "/healthz", 503, 0.01, True),
        ("POST", "/api/tokens", 201, 0.01, True),
        ("DELETE", "/api/tokens/abc", 204, 0.01, True),
        ("GET", "/api/me", 200, 1.5, True),
        ("GET", "/login", 200, 0.01, True),
        ("GET", f"/login/{provider}", 302, 0.01, True),
        ("GET", f"/auth/{provider}/callback", 302, 0.01, True),
    ]
    for method, path, status, seconds, expected in cases:
        with app.test_request_context(path, method=method):
            assert is_notable(request, status, seconds) is expected, (method, path, status)
