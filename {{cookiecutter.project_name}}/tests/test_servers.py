"""The two documented ways to run the app, as real processes: gunicorn and `flask run`.

Both are driven through a full login; their output must not contain any secret the mock
providers minted (the development server logs the callback URL with its `?code=`).
"""

from __future__ import annotations

import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from conftest import PROJECT_ROOT, Browser, free_port, gunicorn_command, run_server
from probe_app import PROBE_PATH

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
    command = gunicorn_command(
        released_port, "--workers", "2", "--threads", "4", "--access-logfile", "-"
    )
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


# --- forwarded headers ------------------------------------------------------------------

FORGED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Ssl": "on",
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Host": "evil.example",
    "SCRIPT_NAME": "/evil",  # gunicorn maps it to the WSGI variable for trusted peers
}


def test_gunicorn_believes_no_forwarded_header_unless_trusted_proxy_count_says_so(
    server_env, tmp_path: Path
) -> None:
    """The app's gunicorn.conf.py (read from the folder gunicorn starts in) empties gunicorn's
    own trust: only TRUSTED_PROXY_COUNT (ProxyFix) decides. Without it, gunicorn believes a
    forged X-Forwarded-Proto (and SCRIPT_NAME) from 127.0.0.1, as the control run shows."""
    runs = {  # name: (TRUSTED_PROXY_COUNT, with the project's gunicorn.conf.py)
        "no proxy": ("0", True),
        "one proxy": ("1", True),
        "control: gunicorn's defaults": ("0", False),
    }
    believed = {}
    with ExitStack() as stack:
        urls = {}
        for name, (count, with_config) in runs.items():
            workdir = tmp_path / name.split(":")[0].replace(" ", "-")
            workdir.mkdir()
            if with_config:
                shutil.copy(PROJECT_ROOT / "gunicorn.conf.py", workdir)
            port = free_port()
            urls[name] = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
            command += ["--pythonpath", str(PROJECT_ROOT / "tests"), "probe_app:create_app()"]
            env = {**server_env, "APP_ENV": "production", "TRUSTED_PROXY_COUNT": count}
            stack.enter_context(run_server(command, env, workdir, urls[name]))
        for name, url in urls.items():
            # gunicorn refuses a path outside the SCRIPT_NAME it believes: give it one inside.
            path = ("" if runs[name][1] else FORGED["SCRIPT_NAME"]) + PROBE_PATH
            response = requests.get(url + path, headers=FORGED, timeout=10)
            assert response.status_code == 200, (name, response.text[:300])
            believed[name] = response.json()
    assert believed["no proxy"] == {
        "scheme": "http",
        "is_secure": False,
        "remote_addr": "127.0.0.1",
        "host": urlsplit(urls["no proxy"]).netloc,
        "script_root": "",
    }
    # One trusted proxy: ProxyFix takes its X-Forwarded-For and -Proto; the host stays ours
    # (PUBLIC_URL is set), and gunicorn still adds nothing of its own.
    one = believed["one proxy"]
    assert (one["scheme"], one["remote_addr"], one["script_root"]) == ("https", "203.0.113.7", "")
    assert one["host"] == urlsplit(urls["one proxy"]).netloc
    # The probe does see what gunicorn believes: its defaults take the forged headers.
    control = believed["control: gunicorn's defaults"]
    assert (control["scheme"], control["script_root"]) == ("https", "/evil")
