"""The container files: Dockerfile, compose.yaml and .dockerignore.

No image is built here: that needs Docker. What runs instead, for real: compose.yaml's
settings go through the app's own production checks, and the image's commands (the
migration step, gunicorn, the HEALTHCHECK) run exactly as written, outside a container,
against a redis-server of this run and a PostgreSQL database made for it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml
from conftest import (
    PROJECT_ROOT,
    TEST_SECRET_KEY,
    TEST_TOKEN_KEY,
    free_port,
    own_urls,
    postgresql_database,
    require_postgresql,
    run_server,
    start_redis_server,
)
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES
from {{ cookiecutter.package_name }}.settings import load_settings

PACKAGE = "{{ cookiecutter.package_name }}"
POSTGRES_PASSWORD = "composepassword123"


# --- reading the files ------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    stages: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            if instruction.upper() == "FROM":
                stages.append([])
            if stages:
                stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def final_stage() -> dict[str, Any]:
    """What the image runs with: ENV, WORKDIR, USER, COPY, EXPOSE, CMD and HEALTHCHECK."""
    stage: dict[str, Any] = {"ENV": {}, "COPY": []}
    for instruction, arguments in dockerfile_stages()[-1]:
        if instruction == "ENV":
            stage["ENV"].update(item.split("=", 1) for item in shlex.split(arguments))
        elif instruction == "COPY":
            stage["COPY"].append(arguments)
        elif instruction == "CMD":
            stage["CMD"] = json.loads(arguments)
        elif instruction == "HEALTHCHECK":
            stage["HEALTHCHECK"] = json.loads(arguments.split(" CMD ", 1)[1])
        else:
            stage[instruction] = arguments
    return stage


def compose() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} on one value."""

    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        if operator == ":?":
            raise LookupError(f"{name}: {argument}")
        return argument or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", replace, value)


def example_env() -> dict[str, str]:
    """.env.example's NAME=value lines, which the baked .env starts from."""
    values = {}
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            values[name.strip()] = value
    return values


def user_env() -> dict[str, str]:
    """.env as a user fills it in: the example, secrets, one provider, POSTGRES_PASSWORD."""
    cls = next(iter(PROVIDER_CLASSES.values()))
    return {
        **example_env(),
        "SECRET_KEY": TEST_SECRET_KEY,
        "TOKEN_ENCRYPTION_KEY": TEST_TOKEN_KEY,
        f"{cls.env_prefix}_CLIENT_ID": "container-test-client",
        f"{cls.env_prefix}_CLIENT_SECRET": "container-test-secret",
        **own_urls(cls),
        "POSTGRES_PASSWORD": POSTGRES_PASSWORD,
    }


def app_container_env(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """The environment compose gives `service`: its env_file (.env), then `environment`."""
    config = compose()["services"][service]
    assert config.get("env_file") == ".env", f"{service} does not read .env"
    overrides = {k: interpolate(str(v), dotenv) for k, v in config["environment"].items()}
    return {**dotenv, **overrides}


# --- compose.yaml -----------------------------------------------------------------------


def test_compose_runs_the_app_redis_postgresql_and_a_migration_first() -> None:
    services = compose()["services"]
    assert set(services) == {"migrate", "app", "redis", "postgres"}

    redis = services["redis"]
    assert redis["command"][:1] == ["redis-server"]
    assert "--appendonly yes" in " ".join(redis["command"])
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "ports" not in redis, "Redis must not be published: only the app may reach it"
    postgres = services["postgres"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert {v.split(":")[0] for v in redis["volumes"] + postgres["volumes"]} <= set(
        compose()["volumes"]
    )

    migrate, app = services["migrate"], services["app"]
    assert migrate["command"] == ["flask", "--app", PACKAGE, "db", "upgrade"]
    assert migrate["image"] == app["image"] and migrate["build"] == app["build"] == "."
    assert app["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for service in (migrate, app):
        for backend in ("redis", "postgres"):
            assert service["depends_on"][backend] == {"condition": "service_healthy"}
    for name in ("app", "redis", "postgres"):
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
    # The app's healthcheck is the image's, and its published port is loopback-only.
    assert app["healthcheck"]["test"] == ["CMD", *final_stage()["HEALTHCHECK"]]
    (port,) = app["ports"]
    assert port.startswith("127.0.0.1:") and port.endswith(f":{final_stage()['ENV']['PORT']}")


def test_compose_gives_the_app_every_setting_production_requires() -> None:
    """.env as the post-gen hook writes it, plus POSTGRES_PASSWORD, passes production's checks."""
    dotenv = user_env()
    for service in ("migrate", "app"):
        env = app_container_env(service, dotenv)
        settings = load_settings(env)  # raises SettingsError naming what is missing
        assert settings.is_production
        assert settings.providers
        assert urlsplit(settings.redis_url or "").hostname == "redis"
        database = make_url(settings.database_url)
        postgres = compose()["services"]["postgres"]["environment"]
        assert database.drivername == "postgresql+psycopg"
        assert database.host == "postgres" and database.port == 5432
        assert database.username == postgres["POSTGRES_USER"]
        assert database.password == interpolate(postgres["POSTGRES_PASSWORD"], dotenv)
        assert database.database == postgres["POSTGRES_DB"]
    # The published port is the one PUBLIC_URL names (the callback URLs registered).
    published = interpolate(compose()["services"]["app"]["ports"][0], dotenv).split(":")[1]
    assert dotenv["PUBLIC_URL"].endswith(f":{published}")


def test_compose_says_what_to_set_when_postgres_password_is_missing() -> None:
    dotenv = {k: v for k, v in user_env().items() if k != "POSTGRES_PASSWORD"}
    with pytest.raises(LookupError, match="POSTGRES_PASSWORD: add POSTGRES_PASSWORD to .env"):
        app_container_env("app", dotenv)


# --- Dockerfile and .dockerignore ----------------------------------------------------------


def test_the_image_is_multi_stage_non_root_and_runs_gunicorn() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "build the dependencies in a stage of their own"
    build_steps = " ".join(arguments for _, arguments in stages[0])
    assert "pip install" in build_steps and "[dev]" not in build_steps
    stage = final_stage()
    assert stage.get("USER") not in (None, "root", "0"), "the app must not run as root"
    assert stage["CMD"] == ["gunicorn", f"{PACKAGE}:create_app()"]
    assert stage["ENV"]["APP_ENV"] == "production"
    assert stage["EXPOSE"] == stage["ENV"]["PORT"]
    assert any(copy.startswith("gunicorn.conf.py") for copy in stage["COPY"])
    assert "/healthz" in " ".join(stage["HEALTHCHECK"])


def test_dockerignore_keeps_secrets_and_local_data_out_but_not_what_the_image_needs() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", "instance", ".venv", ".git"} <= ignored
    copied = {"pyproject.toml", "README.md", "src", "gunicorn.conf.py"}
    assert not copied & ignored


# --- the image's commands, outside a container ------------------------------------------------


def run_as_image(argv: list[str]) -> list[str]:
    """The image's command with this interpreter: `flask ...` -> `python -m flask ...`."""
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    return [sys.executable, "-m", *argv]


def test_the_images_commands_run_against_real_redis_and_postgresql(tmp_path: Path) -> None:
    server_url = require_postgresql()
    stage = final_stage()
    # The image's WORKDIR holds gunicorn.conf.py and nothing else (no .env).
    workdir = tmp_path / "app"
    workdir.mkdir()
    shutil.copy(PROJECT_ROOT / "gunicorn.conf.py", workdir)
    redis_port, app_port = free_port(), free_port()
    redis_server = start_redis_server(redis_port, tmp_path)
    try:
        with postgresql_database(server_url) as database_url:
            container = app_container_env("app", user_env())
            # The service names compose resolves, here: our redis-server and database.
            assert container["REDIS_URL"] == "redis://redis:6379/0"
            container["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            container["DATABASE_URL"] = database_url
            env = {
                **{k: v for k, v in os.environ.items() if k not in example_env()},
                **stage["ENV"],
                **container,
                "PORT": str(app_port),
                "PATH": os.environ["PATH"],
                # The image installs the package; here it is imported from the source tree.
                "PYTHONPATH": str(PROJECT_ROOT / "src"),
            }
            url = f"http://127.0.0.1:{app_port}"

            # Before the migration step, production refuses to start and names the command.
            early = subprocess.run(
                run_as_image(stage["CMD"]),
                env=env,
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert early.returncode != 0
            assert "db upgrade" in early.stdout + early.stderr

            migrate = compose()["services"]["migrate"]["command"]
            result = subprocess.run(
                run_as_image(migrate),
                env=env,
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            engine = sa.create_engine(database_url)
            try:
                with engine.connect() as connection:
                    tables = set(sa.inspect(connection).get_table_names())
            finally:
                engine.dispose()
            assert {"alembic_version", "users", "identities"} <= tables

            healthcheck = run_as_image(stage["HEALTHCHECK"])
            with run_server(run_as_image(stage["CMD"]), env, workdir, url) as log_path:
                check = subprocess.run(healthcheck, env=env, capture_output=True, timeout=30)
                assert check.returncode == 0, check.stderr
                # Redis gone: /healthz answers 503 and the HEALTHCHECK fails.
                redis_server.terminate()
                redis_server.wait(timeout=10)
                check = subprocess.run(healthcheck, env=env, capture_output=True, timeout=30)
                assert check.returncode != 0
                assert b"503" in check.stderr
            log = log_path.read_text()
            assert "Booting worker" in log and "0.0.0.0:" + str(app_port) in log
            assert TEST_SECRET_KEY not in log and POSTGRES_PASSWORD not in log
    finally:
        if redis_server.poll() is None:
            redis_server.terminate()
        redis_server.wait(timeout=10)
