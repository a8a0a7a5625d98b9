"""One Flask app serving every enabled mock provider, and a way to run it in a thread."""

from __future__ import annotations

import dataclasses
import threading
import time
from types import TracebackType
from urllib.parse import urlsplit

from flask import Flask, Response, render_template, request
from werkzeug.http import http_date
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import control_api
from .control import MockControl
from .core import MockState, base_url, state
from .settings import MockSettings


class MockRequestHandler(WSGIRequestHandler):
    """Leaves the Date header to the app, so a provider's clock can be skewed."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())


class QuietRequestHandler(MockRequestHandler):
    """No access log: tests start the mock and only want their own output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class PathOnlyRequestHandler(MockRequestHandler):
    """Access log without query strings: `/me?access_token=...` must not end up in a log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        full_path = self.path
        self.path = urlsplit(full_path).path
        try:
            super().log_request(code, size)
        finally:
            self.path = full_path


def create_app(settings: MockSettings | None = None) -> Flask:
    """The mock server: each provider under its prefix, the control API under /_mock/."""
    from . import load_providers  # the registry lives in the package, which imports us

    settings = settings or MockSettings()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    providers = load_providers()
    mock = MockState(settings, providers)
    app.extensions["mock_providers"] = mock
    for name, module in providers.items():
        for blueprint in module.register(app):
            mock.blueprint_provider[blueprint] = name
    app.register_blueprint(control_api.bp)
    app.before_request(count_request)
    app.after_request(skew_date_header)
    app.add_url_rule("/", "index", index)
    return app


def skew_date_header(response: Response) -> Response:
    """Every answer's Date; the `clock_skew` switch shifts a provider's clock."""
    blueprint = (request.endpoint or "").rpartition(".")[0]
    provider = state().blueprint_provider.get(blueprint)
    skew = int(state().switch(provider, "clock_skew") or 0) if provider else 0
    response.headers["Date"] = http_date(time.time() + skew)
    return response


def count_request() -> None:
    mock = state()
    blueprint, _, endpoint = (request.endpoint or "").rpartition(".")
    provider = mock.blueprint_provider.get(blueprint)
    if provider:
        mock.count(provider, endpoint)


def index() -> str:
    mock = state()
    titles = ", ".join(module.TITLE for module in mock.providers.values())
    return render_template("index.html", title=titles, env=app_env(base_url(), mock.settings))


def app_env(base: str, settings: MockSettings) -> dict[str, str]:
    """Environment variables that point the app at the mock, for enabled providers only."""
    from . import load_providers

    env: dict[str, str] = {}
    for module in load_providers().values():
        env.update(module.app_env(base.rstrip("/"), settings))
    return env


class RunningMock:
    """A mock serving real HTTP from a background thread; stop it with `stop()` or `with`."""

    def __init__(self, server: BaseWSGIServer, app: Flask, settings: MockSettings):
        self.server = server
        self.app = app
        self.settings = settings
        self.url = settings.public_url
        self.control = MockControl(self.url)
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="mock-providers", daemon=True
        )
        self._thread.start()

    def app_env(self) -> dict[str, str]:
        return app_env(self.url, self.settings)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningMock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start(
    settings: MockSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    quiet: bool = True,
) -> RunningMock:
    """Serve the mock on `host:port` (0: a free port) in a thread; returns once it listens."""
    settings = dataclasses.replace(settings or MockSettings())
    app = create_app(settings)
    handler = QuietRequestHandler if quiet else PathOnlyRequestHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    if not settings.public_url:
        settings.public_url = f"http://{host}:{server.server_port}"
    return RunningMock(server, app, settings)
