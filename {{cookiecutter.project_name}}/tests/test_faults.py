"""Faults: slow or failing providers, a dead or hung Redis, and hostile input.

A provider that times out or fails gives a 502/504 page with "Try again"; Redis trouble
gives 503 (never a sign-out); bad input on any route gives a clean 4xx, never a 5xx.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests
from conftest import FACTS, Browser, RunningApp, free_port, query, wait_for

from {{ cookiecutter.package_name }}.api_tokens import TOKEN_PREFIX
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

PROVIDERS = list(PROVIDER_CLASSES)
PROVIDER = PROVIDERS[0]
MAX_BODY = 64 * 1024


def retry_link(response: requests.Response) -> str:
    found = re.search(r'id="retry" href="([^"]+)"', response.text)
    assert found, response.text
    return found.group(1)


# --- providers: timeouts and 5xx ------------------------------------------------------


@pytest.mark.parametrize(
    ("switches", "status", "code"),
    [
        pytest.param({"delay": 1.5}, 504, "provider_timeout", id="slow"),
        pytest.param({"token_http_status": 503}, 502, "provider_unavailable", id="5xx"),
    ],
)
def test_a_failing_provider_gives_a_page_with_a_working_retry(
    variant, mock, switches, status, code
) -> None:
    app = variant(OAUTH_HTTP_TIMEOUT="0.5")
    for provider in PROVIDERS:
        browser = Browser(app.url)
        callback = browser.start_login(provider)
        mock.control.switch(provider, **switches)
        started = time.monotonic()
        page = browser.finish_login(callback)
        assert time.monotonic() - started < 1.4  # the 0.5 s timeout cut the 1.5 s wait short
        assert page.status_code == status, (provider, page.status_code)
        assert f'data-error="{code}"' in page.text and "Traceback" not in page.text
        assert retry_link(page) == f"/login/{provider}"
        assert browser.me().status_code == 401
        mock.control.reset()
        final = browser.follow(browser.get(retry_link(page)))
        assert final.status_code == 200 and 'id="welcome"' in final.text, provider
        assert browser.me().status_code == 200


class Blackhole:
    """A TCP port that never answers: `kind="read"` accepts connections (the kernel does)
    and sends nothing; `kind="connect"` has a full backlog, so connecting hangs."""

    def __init__(self, kind: str) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0 if kind == "connect" else 64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.fillers: list[socket.socket] = []
        if kind == "connect":
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(self.listener.getsockname())
                self.fillers.append(filler)
            time.sleep(0.1)

    def close(self) -> None:
        for sock in [*self.fillers, self.listener]:
            sock.close()


@pytest.mark.parametrize("kind", ["connect", "read"])
def test_every_outbound_call_has_a_connect_and_a_read_timeout(variant, kind) -> None:
    hole = Blackhole(kind)
    urls = {
        variable: hole.url for cls in PROVIDER_CLASSES.values() for variable in cls.url_settings
    }
    for facts in FACTS.values():  # e.g. a variable that names a discovery document
        if facts.api_variable in urls:
            urls[facts.api_variable] += facts.api_path
    try:
        app = variant(OAUTH_HTTP_TIMEOUT="0.5", **urls)
        for provider in PROVIDERS:
            browser = Browser(app.url)
            started = time.monotonic()
            response = browser.get(f"/login/{provider}")
            if response.status_code == 302:  # no outbound call yet: the token exchange has one
                state = query(response.headers["Location"])["state"]
                response = browser.get(
                    f"/auth/{provider}/callback", params={"code": "c0de", "state": state}
                )
            elapsed = time.monotonic() - started
            assert response.status_code == 504, (provider, response.text)
            assert 'data-error="provider_timeout"' in response.text
            assert urlsplit(retry_link(response)).path == f"/login/{provider}"
            assert elapsed < 3, provider
    finally:
        hole.close()


# --- Redis: unreachable, then back; hung ------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server child process of this test alone, on a fixed port."""

    port: int
    workdir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: redis.Redis.from_url(self.url).ping(), what="own redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.resume()  # a stopped process cannot act on SIGTERM
            server.stop()


def timed_get(browser: Browser, path: str, limit: float = 5.0) -> requests.Response:
    """GET that fails the test (instead of waiting on) when the app takes over `limit`."""
    started = time.monotonic()
    try:
        response = browser.http.get(
            browser.app_url + path, allow_redirects=False, timeout=limit + 1
        )
    except requests.Timeout:
        pytest.fail(f"{path} did not answer within {limit + 1}s while Redis was down")
    assert time.monotonic() - started < limit, f"{path} took longer than {limit}s"
    return response


def assert_unavailable_but_still_signed_in(app: RunningApp, browser: Browser) -> None:
    cookie = browser.cookie()
    me = timed_get(browser, "/api/me")
    assert me.status_code == 503, me.text
    # Tagged before the session is opened: the failed read still has its request id.
    assert re.fullmatch(r"[0-9a-f]{16}", me.headers["X-Request-ID"])
    assert me.headers["Content-Type"] == "application/json"
    assert me.json()["error"] == "service_unavailable"
    assert int(me.headers["Retry-After"]) > 0
    for path in ("/", "/account", f"/login/{PROVIDER}", "/api/tokens"):
        response = timed_get(browser, path)
        # Never served as signed out: no 401, no redirect to /login, no cleared cookie.
        assert response.status_code == 503, (path, response.status_code)
        assert "Location" not in response.headers
        assert "Set-Cookie" not in response.headers
        assert "Traceback" not in response.text
    page = timed_get(browser, "/account")
    assert page.headers["Content-Type"].startswith("text/html")
    assert "not answering" in page.text
    health = requests.get(f"{app.url}/healthz", timeout=6)
    assert health.status_code == 503
    assert browser.cookie() == cookie


def test_redis_going_away_is_a_503_then_the_app_recovers(variant, own_redis) -> None:
    app = variant(REDIS_URL=own_redis.url)
    browser = Browser(app.url)
    assert browser.login(PROVIDER).status_code == 200
    assert browser.me().status_code == 200
    own_redis.stop()
    assert_unavailable_but_still_signed_in(app, browser)
    # Back on the same port, empty (it persisted nothing): the app recovers by itself.
    own_redis.start()
    wait_for(
        lambda: requests.get(f"{app.url}/healthz", timeout=5).status_code == 200,
        timeout=15,
        what="the app's recovery",
    )
    assert browser.me().status_code == 401  # that session died with the old Redis
    fresh = Browser(app.url)
    assert fresh.login(PROVIDER).status_code == 200
    assert fresh.me().status_code == 200


def test_a_hung_redis_answers_503_within_the_socket_timeout(variant, own_redis) -> None:
    app = variant(REDIS_URL=own_redis.url)
    browser = Browser(app.url)
    assert browser.login(PROVIDER).status_code == 200
    user_id = browser.me().json()["id"]
    own_redis.pause()
    try:
        me = timed_get(browser, "/api/me")
        assert me.status_code == 503 and int(me.headers["Retry-After"]) > 0
        health = requests.get(f"{app.url}/healthz", timeout=6)
        assert health.status_code == 503
    finally:
        own_redis.resume()
    wait_for(
        lambda: requests.get(f"{app.url}/healthz", timeout=5).status_code == 200,
        timeout=15,
        what="the app's recovery",
    )
    me = browser.me()  # only paused: the session survived
    assert me.status_code == 200 and me.json()["id"] == user_id


# --- bad input on every route -------------------------------------------------------

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"]


def concrete_paths(app: RunningApp) -> list[str]:
    """One real path per route of the app's url_map."""
    paths = set()
    for rule in app.app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?provider>", PROVIDER, rule.rule)
        path = re.sub(r"<path:[a-z_]+>", "style.css", path)
        paths.add(re.sub(r"<[^>]+>", "x", path))
    return sorted(paths)


def allowed_methods(app: RunningApp, path: str) -> set[str]:
    return set(app.app.url_map.bind("127.0.0.1").allowed_methods(path))


def raw_request(app: RunningApp, head: bytes, body: bytes = b"") -> int:
    """Send bytes as they are (invalid UTF-8 included); return the status code."""
    host = urlsplit(app.url).netloc.encode()
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(head + b"\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n" + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n")[0].decode("latin-1")
    assert status_line.startswith("HTTP/1."), status_line
    return int(status_line.split()[1])


@pytest.fixture()
def clients(app: RunningApp) -> dict[str, Browser]:
    signed_in = Browser(app.url)
    assert signed_in.login(PROVIDER).status_code == 200
    return {"anonymous": Browser(app.url), "signed_in": signed_in}


def send(browser: Browser, method: str, path: str, **kwargs) -> requests.Response:
    return browser.http.request(
        method, browser.app_url + path, allow_redirects=False, timeout=10, **kwargs
    )


def test_the_sweep_covers_every_route(app) -> None:
    paths = concrete_paths(app)
    for expected in ("/", "/login", f"/login/{PROVIDER}", "/api/me", "/healthz", "/logout"):
        assert expected in paths
    assert len(paths) >= 12


def test_wrong_methods_on_every_route_are_405(app, clients) -> None:
    for path in concrete_paths(app):
        allowed = allowed_methods(app, path)
        for method in ALL_METHODS:
            for name, browser in clients.items():
                response = send(browser, method, path)
                assert response.status_code < 500, (name, method, path, response.status_code)
                if method not in allowed:
                    assert response.status_code == 405, (name, method, path)
                    assert set(response.headers["Allow"].split(", ")) == allowed
    assert clients["signed_in"].me().status_code == 200  # nothing above signed them out


QUERIES = [
    "?q=" + "a" * 8000,
    "?next=/" + "a" * 8000,
    "?" + "&".join(f"p{i}=v" for i in range(1000)),
    "?next=%zz&%=%%&code=%E0%A4%A&state=%ff%fe",
    "?next=%00&error=%0d%0aSet-Cookie:x=1&state=%",
    "?code=x&state=y&error=" + "e" * 5000,
]
PATH_TRICKS = ["%zz", "%E0%A4%A", "%ff%fe", "%00", "..%2f..%2f", "a" * 2000]


def test_huge_and_malformed_query_strings_and_paths(app, clients) -> None:
    for path in concrete_paths(app):
        methods = allowed_methods(app, path)
        method = "GET" if "GET" in methods else sorted(methods - {"OPTIONS"})[0]
        for name, browser in clients.items():
            for suffix in QUERIES:
                response = send(browser, method, path + suffix)
                assert response.status_code < 500, (name, method, path, suffix[:40])
            for trick in PATH_TRICKS:
                bad = path.rstrip("/") + "/" + trick
                response = send(browser, method, bad)
                assert 400 <= response.status_code < 500, (name, method, bad[:60])
                replaced = re.sub(r"/[^/]+$", "/" + trick, path)
                assert send(browser, method, replaced).status_code < 500, (name, replaced[:60])


def test_invalid_utf8_in_path_and_query_is_a_4xx(app, clients) -> None:
    cookie = clients["signed_in"].cookie()
    for path in concrete_paths(app):
        for raw in (
            path.encode() + b"\xff\xfe",
            path.encode() + b"/\xc3\x28",
            path.encode() + b"?next=/\xff&code=\xc3\x28&state=\xed\xa0\x80",
        ):
            for extra in (b"", b"\r\nCookie: session=" + cookie.encode()):
                status = raw_request(app, b"GET " + raw + b" HTTP/1.1" + extra)
                assert status < 500, (raw, status)
                if b"?" not in raw:
                    assert status >= 400, (raw, status)
    # Malformed request lines and headers, whoever answers them.
    for head in (
        b"GET /login/\xff\xff HTTP/1.1\r\nX-Bytes: \xff\xfe\xfd",
        b"GET /api/me HTTP/1.1\r\nCookie: session=\xff\xfe; __Host-session=\x80",
        b"GET /api/me HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8",
        b"GET /%%%%%% HTTP/1.1",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1",
        b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70000,
        b"GET / HTTP/1.1" + b"".join(b"\r\nX-%d: v" % i for i in range(200)),
        b"BREW / HTTP/1.1",
    ):
        assert raw_request(app, head) < 500, head[:60]


def test_unknown_providers_are_404(app, clients) -> None:
    signed_in = clients["signed_in"]
    csrf = {"X-CSRF-Token": signed_in.csrf_token()}
    for name in ("nope", PROVIDER.upper(), f"{PROVIDER}%00", "a" * 300, "%2e%2e", f"{PROVIDER}.x"):
        for browser in clients.values():
            for path in (f"/login/{name}", f"/auth/{name}/callback?code=x&state=y"):
                assert send(browser, "GET", path).status_code == 404, path
        response = send(signed_in, "GET", f"/api/providers/{name}/profile")
        assert response.status_code == 404
        response = send(signed_in, "POST", f"/account/connections/{name}/disconnect", headers=csrf)
        assert response.status_code == 404


def test_huge_bodies_are_413(app, clients) -> None:
    csrf = {"X-CSRF-Token": clients["signed_in"].csrf_token()}
    huge = "a=" + "b" * (MAX_BODY + 1024)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong = []
    for path in concrete_paths(app):
        for method in sorted(allowed_methods(app, path) & {"POST", "PUT", "PATCH", "DELETE"}):
            for name, browser in clients.items():
                headers = {**form, **(csrf if name == "signed_in" else {})}
                response = send(browser, method, path, data=huge, headers=headers)
                if response.status_code != 413:
                    wrong.append((name, method, path, response.status_code))
    response = send(
        clients["signed_in"],
        "POST",
        "/api/tokens",
        data=b'{"name": "' + b"x" * (MAX_BODY + 1) + b'"}',
        headers={**csrf, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["X-Request-ID"]
    assert clients["signed_in"].me().status_code == 200
    assert not wrong, f"bodies over {MAX_BODY} bytes not refused with 413: {wrong}"


GARBAGE_COOKIES = [
    "session=garbage",
    "session=" + "A" * 4000,
    'session="unterminated',
    "session=%ff%fe%00",
    "session=;;;;=;=",
    "__Host-session=x; session=y; session=z",
    "session=" + "é" * 100,
    "session=\x00\x01\x02",
    "=" * 100,
]
GARBAGE_AUTHORIZATION = [
    "Bearer",
    "Bearer ",
    "Bearer " + "x" * 5000,
    "Bearer a b c",
    "Bearer \x00\x01",
    "Basic !!!",
    "Basic " + "=" * 10,
    "Token abc",
    "OAuth é",
    f"Bearer {TOKEN_PREFIX}" + "z" * 43,
    f"Bearer {TOKEN_PREFIX}" + "z" * 300,
    ",,,",
]


def test_garbage_cookies_and_authorization_headers(app, clients) -> None:
    anonymous = clients["anonymous"]
    for path in concrete_paths(app):
        methods = allowed_methods(app, path)
        method = "GET" if "GET" in methods else sorted(methods - {"OPTIONS"})[0]
        for cookie in GARBAGE_COOKIES:
            response = send(anonymous, method, path, headers={"Cookie": cookie})
            assert response.status_code < 500, (path, cookie[:30], response.status_code)
        for authorization in GARBAGE_AUTHORIZATION:
            for browser in clients.values():
                response = send(browser, method, path, headers={"Authorization": authorization})
                assert response.status_code < 500, (path, authorization[:30])
                if browser is anonymous and path.startswith("/api/"):
                    assert response.status_code in (400, 401, 403, 404, 405), (path, authorization)
    me = send(anonymous, "GET", "/api/me", headers={"Authorization": "Bearer nope"})
    assert me.status_code == 401 and me.json()["error"] == "invalid_token"


NOT_JSON = [
    ("text/plain", b"name=x&scopes=profile:read"),
    ("application/json", b"{"),
    ("application/json", b"\xff\xfe\x00{"),
    ("application/json", b""),
    ("application/json", b"[]"),
    ("application/json", b"null"),
    ("application/json", b'"profile:read"'),
    ("application/json", b'{"name": 1, "scopes": ["profile:read"]}'),
    ("application/json", b'{"name": "x", "scopes": "profile:read"}'),
    ("application/json", b'{"name": "x", "scopes": ["root"]}'),
    ("application/json", b'{"name": "x", "scopes": ["profile:read"], "expires_in": "soon"}'),
    ("application/json", b'{"name": "x", "scopes": ["profile:read"], "expires_in": 1e400}'),
    ("application/json", b'{"name": "x", "scopes": ["profile:read"], "expires_in": true}'),
    ("application/json", b'{"name": "' + b"x" * 500 + b'", "scopes": ["profile:read"]}'),
    ("application/json", b"[" * 30000 + b"]" * 30000),  # deep nesting, under the size limit
    ("application/json", b'{"a":' * 10000 + b"1" + b"}" * 10000),  # under 64 KB too
    ("application/x-www-form-urlencoded", b"name=x&scopes=profile%3Aread"),
]


def test_json_endpoints_given_non_json_are_400(app, clients) -> None:
    browser = clients["signed_in"]
    csrf = {"X-CSRF-Token": browser.csrf_token()}
    wrong = []
    for content_type, body in NOT_JSON:
        headers = {**csrf, "Content-Type": content_type}
        response = send(browser, "POST", "/api/tokens", data=body, headers=headers)
        if response.status_code != 400 or response.json()["error"] not in (
            "invalid_request",
            "invalid_scope",
        ):
            wrong.append((content_type, body[:24], response.status_code))
    assert send(browser, "GET", "/api/tokens").json() == []  # nothing was created
    assert not wrong, wrong
