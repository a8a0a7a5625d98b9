"""What exists only for development can never be switched on in production.

No development-only route answers (the mock's control API, a debugger or console), error
pages carry no traceback and no development details, and the app refuses to start on the
in-process Redis emulation or the development SQLite file (no DATABASE_URL), whichever way it
is started. Real processes, real HTTP.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import RunningApp, free_port
from flask import Flask

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.errors import AppError
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES
from {{ cookiecutter.package_name }}.settings import SettingsError

PACKAGE = create_app.__module__
DEVELOPMENT_PATHS = [
    "/_mock/reset",
    "/_mock/switches",
    "/_mock/requests",
    "/_mock/minted",
    "/_mock/example/rotate-keys",
    "/debug",
    "/console",
    "/__debug__/",
    "/_debug_toolbar/",
    "/debugger",
]
DEBUGGER_MARKS = ("Werkzeug", "Traceback", "__debugger__", "Interactive Console", "EVALEX")
SECRET_DETAIL = "internal-detail-7f3a9c"


def production(app_env: dict[str, str], **overrides: str | None) -> dict[str, str]:
    env = {**app_env, "APP_ENV": "production", **overrides}
    return {k: v for k, v in env.items() if v is not None}


def assert_no_debugger(response: requests.Response) -> None:
    for mark in DEBUGGER_MARKS:
        assert mark not in response.text, (response.url, mark)
    assert "javascript" not in response.headers.get("Content-Type", "")


def serves_or_exits(process: subprocess.Popen, url: str, timeout: float = 30.0) -> bool | None:
    """True as soon as `url`/healthz answers, False once the process has exited, None if
    neither happened in time (e.g. gunicorn respawning workers that refuse to start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code < 500:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return None


def with_failing_routes(env: dict[str, str]) -> Flask:
    """The real app plus two routes that fail: a bug, and an error carrying details."""
    app = create_app(env)

    def boom() -> str:
        raise RuntimeError(SECRET_DETAIL)

    def detailed() -> str:
        raise AppError(502, "provider_error", "The provider failed.", details={"x": SECRET_DETAIL})

    app.add_url_rule("/boom", "boom", boom)
    app.add_url_rule("/detailed", "detailed", detailed)
    return app


# --- routes ---------------------------------------------------------------------------


def test_no_development_route_answers_in_production(variant) -> None:
    running = variant(APP_ENV="production")
    assert running.app.debug is False
    rules = [rule.rule for rule in running.app.url_map.iter_rules()]
    assert not [r for r in rules if r.startswith(("/_mock", "/debug", "/console", "/__"))]
    for path in DEVELOPMENT_PATHS:
        for method in ("GET", "POST"):
            response = requests.request(method, running.url + path, timeout=10)
            assert response.status_code == 404, (method, path, response.status_code)
            assert_no_debugger(response)
    for resource in ("debugger.js", "style.css", "console.png"):
        response = requests.get(
            f"{running.url}/",
            params={"__debugger__": "yes", "cmd": "resource", "f": resource},
            timeout=10,
        )
        assert_no_debugger(response)


# --- error pages --------------------------------------------------------------------


def test_error_pages_show_no_traceback_and_production_no_details(app_env, redis_db) -> None:
    apps = {
        env_name: RunningApp(
            f"http://127.0.0.1:{port}", port, with_failing_routes({**app_env, "APP_ENV": env_name})
        ).start()
        for env_name, port in (("development", free_port()), ("production", free_port()))
    }
    try:
        for env_name, running in apps.items():
            for accept in ("text/html", "application/json"):
                response = requests.get(
                    f"{running.url}/boom", headers={"Accept": accept}, timeout=10
                )
                assert response.status_code == 500
                assert SECRET_DETAIL not in response.text and "RuntimeError" not in response.text
                assert_no_debugger(response)
                detailed = requests.get(
                    f"{running.url}/detailed", headers={"Accept": accept}, timeout=10
                )
                assert detailed.status_code == 502
                assert_no_debugger(detailed)
                # Development shows the details that help fix a configuration; production never.
                assert (SECRET_DETAIL in detailed.text) is (env_name == "development"), env_name
    finally:
        for running in apps.values():
            running.stop()


def test_the_debugger_cannot_be_switched_on_in_production(
    released_port, project_env, app_env, app_url, tmp_path: Path
) -> None:
    """`flask --debug run` in production must refuse to start, or at least serve no debugger."""
    command = [sys.executable, "-m", "flask", "--app", PACKAGE, "--debug", "run"]
    command += ["--no-reload", "--host", "127.0.0.1", "--port", str(released_port)]
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            env={**project_env, **production(app_env)},
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            served = serves_or_exits(process, app_url)
            assert served is not None, "neither served nor exited"
            if served:  # then it must at least serve no debugger
                for path in ("/console", "/?__debugger__=yes&cmd=resource&f=debugger.js"):
                    assert_no_debugger(requests.get(app_url + path, timeout=10))
                assert requests.get(f"{app_url}/console", timeout=10).status_code == 404
        finally:
            process.terminate()
            process.wait(timeout=15)
    if not served:  # refused: one clear message naming the cause
        output = log_path.read_text()
        assert process.returncode != 0, output
        assert "FLASK_DEBUG" in output, output
        assert "Traceback" not in output, output


# --- the in-process Redis ---------------------------------------------------------------


@pytest.mark.parametrize("redis_url", [None, "", "   "])
def test_production_refuses_the_in_process_redis(app_env, redis_url) -> None:
    with pytest.raises(SettingsError) as refused:
        create_app(production(app_env, REDIS_URL=redis_url))
    assert "REDIS_URL" in str(refused.value)
    # Development accepts it: it is the development convenience being refused above.
    app = create_app({k: v for k, v in app_env.items() if k != "REDIS_URL"})
    assert type(app.extensions["redis"]).__module__.startswith("fakeredis")


# --- the development database -----------------------------------------------------------


@pytest.mark.parametrize("database_url", [None, "", "   "])
def test_production_refuses_the_development_database(
    app_env, database_url, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # where the development default would go (./instance/)
    with pytest.raises(SettingsError) as refused:
        create_app(production(app_env, DATABASE_URL=database_url))
    assert "DATABASE_URL is required in production" in str(refused.value)
    assert not (tmp_path / "instance").exists()  # refused before creating anything
    # Development accepts it: it is the development convenience being refused above.
    app = create_app({k: v for k, v in app_env.items() if k != "DATABASE_URL"})
    assert app.config["APP_SETTINGS"].database_url.startswith(f"sqlite:///{tmp_path}")
    assert list((tmp_path / "instance").glob("*.sqlite3"))


@pytest.mark.parametrize("variable", ["REDIS_URL", "DATABASE_URL", "PUBLIC_URL"])
def test_the_factory_exits_with_one_message_naming_the_variable(
    project_env, app_env, tmp_path: Path, variable
) -> None:
    env = {**project_env, **production(app_env, **{variable: None})}
    env.pop(variable, None)
    result = subprocess.run(
        [sys.executable, "-c", f"from {PACKAGE} import create_app; create_app()"],
        env=env,
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{variable} is required in production" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "instance").exists()


@pytest.mark.parametrize(
    "extra_args",
    [
        pytest.param([], id="plain"),
        # The doctor loads settings leniently; a server whose command line merely contains
        # its words must not (gunicorn ignores extra positional arguments).
        pytest.param(["auth", "doctor"], id="doctor-words"),
    ],
)
@pytest.mark.parametrize("variable", ["REDIS_URL", "DATABASE_URL", "PUBLIC_URL"])
def test_gunicorn_refuses_a_production_setup_without_redis_database_or_public_url(
    released_port, project_env, app_env, app_url, tmp_path: Path, extra_args, variable
) -> None:
    env = {**project_env, **production(app_env, **{variable: None})}
    env.pop(variable, None)
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{released_port}"]
    command += [f"{PACKAGE}:create_app()", *extra_args]
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            served = serves_or_exits(process, app_url)  # a busy machine may take 10 s
        finally:
            process.terminate()
            process.wait(timeout=15)
    output = log_path.read_text()
    assert served is not True, f"a production app served without {variable}"
    assert served is False, "gunicorn neither served nor exited: it respawns refusing workers"
    assert process.returncode != 0
    assert f"{variable} is required in production" in output


# --- providers ------------------------------------------------------------------------


def test_production_refuses_a_provider_with_one_credential_or_no_provider(app_env) -> None:
    """Both used to start: the provider silently disabled, or a server nobody can sign in to."""
    for name, cls in PROVIDER_CLASSES.items():
        for given, missing in (("ID", "SECRET"), ("SECRET", "ID")):
            prefix = f"{cls.env_prefix}_CLIENT_"
            with pytest.raises(SettingsError) as refused:
                create_app(production(app_env, **{prefix + missing: None}))
            expected = f"{prefix}{missing} is not set but {prefix}{given} is"
            assert expected in str(refused.value), name
    no_provider = {
        f"{cls.env_prefix}_CLIENT_{part}": None
        for cls in PROVIDER_CLASSES.values()
        for part in ("ID", "SECRET")
    }
    with pytest.raises(SettingsError) as refused:
        create_app(production(app_env, **no_provider))
    assert "no sign-in provider is configured" in str(refused.value)
    for cls in PROVIDER_CLASSES.values():
        assert f"{cls.env_prefix}_CLIENT_ID and {cls.env_prefix}_CLIENT_SECRET" in str(
            refused.value
        )


# --- no credentials in messages ---------------------------------------------------------

PASSWORD = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        pytest.param("REDIS_URL", f"redsi://:{PASSWORD}@127.0.0.1:6379/0", id="redis-scheme-typo"),
        pytest.param("REDIS_URL", f"127.0.0.1:{PASSWORD}@6379", id="redis-no-scheme"),
        pytest.param(
            "DATABASE_URL", f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:54x2/app", id="db-port"
        ),
        pytest.param(
            "DATABASE_URL",
            f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/app?password={PASSWORD}",
            id="db-unreachable",
        ),
    ],
)
def test_a_refused_url_is_named_on_stderr_without_its_password(
    project_env, app_env, tmp_path: Path, variable, value
) -> None:
    env = {**project_env, **production(app_env, **{variable: value})}
    result = subprocess.run(
        [sys.executable, "-c", f"from {PACKAGE} import create_app; create_app()"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert variable in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert PASSWORD not in result.stderr + result.stdout
