"""The two documented ways to run the app, as real processes: gunicorn and `flask run`.

Both are driven through a full login; their output must not contain any secret the mock
providers minted (the development server logs the callback URL with its `?code=`).
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import Browser, run_server

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES
from mock_providers.demo import app_command

PACKAGE = "{{ cookiecutter.package_name }}"
PROVIDERS = list(PROVIDER_CLASSES)


@pytest.fixture()
def server_env(project_env, app_env) -> dict[str, str]:
    return {**project_env, **app_env}


def assert_no_secrets(output: str, minted: list[str]) -> None:
    leaked = [s for s in minted if s in output]
    assert not leaked, f"{len(leaked)} minted secrets appear in the server output"


def test_gunicorn_serves_the_factory_with_two_workers(
    released_port, server_env, app_url, tmp_path, mock
) -> None:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "2",
        "--threads",
        "4",
        "--bind",
        f"127.0.0.1:{released_port}",
        "--access-logfile",
        "-",
        f"{PACKAGE}:create_app()",
    ]
    with run_server(command, server_env, tmp_path, app_url) as log_path:
        browser = Browser(app_url)
        assert browser.login(PROVIDERS[0]).status_code == 200
        # Sessions live in Redis, so every worker sees the login.
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: browser.me().status_code, range(40)))
        assert statuses == [200] * 40
    output = log_path.read_text()
    assert "Booting worker" in output
    assert "/auth/" in output  # the access log did record the callback...
    assert_no_secrets(output, mock.control.minted())  # ...without its code or state


def test_flask_run_serves_the_app(released_port, server_env, app_url, tmp_path, mock) -> None:
    # The command `make demo` runs.
    with run_server(app_command(released_port), server_env, tmp_path, app_url) as log_path:
        for provider in PROVIDERS:
            browser = Browser(app_url)
            assert browser.login(provider).status_code == 200
            assert browser.me().status_code == 200
    output = log_path.read_text()
    assert "GET /auth/" in output
    assert "[redacted]" in output
    assert_no_secrets(output, mock.control.minted())
