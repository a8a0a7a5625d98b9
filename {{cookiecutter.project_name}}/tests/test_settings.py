"""Settings are read once, validated, and a bad production config refuses to start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import TEST_SECRET_KEY, TEST_TOKEN_KEY

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings

PACKAGE = create_app.__module__

# Any provider this project was baked with serves for the generic checks.
PROVIDER = next(iter(PROVIDER_CLASSES.values()))
URL_VARIABLE = next(iter(PROVIDER.url_settings))
PRODUCTION_DATABASE_URL = "postgresql+psycopg://app:db-password@db.example.com:5432/app"


def production_env(**overrides: str) -> dict[str, str]:
    env = {
        "APP_ENV": "production",
        "SECRET_KEY": TEST_SECRET_KEY,
        "TOKEN_ENCRYPTION_KEY": TEST_TOKEN_KEY,
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "DATABASE_URL": PRODUCTION_DATABASE_URL,
        f"{PROVIDER.env_prefix}_CLIENT_ID": "client-id",
        f"{PROVIDER.env_prefix}_CLIENT_SECRET": "client-secret",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v}


def problems_of(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    return str(caught.value)


def test_valid_production_settings_load() -> None:
    settings = load_settings(production_env())
    assert settings.is_production
    assert list(settings.providers) == [PROVIDER.name]
    assert settings.database_url == PRODUCTION_DATABASE_URL


def test_app_env_defaults_to_production() -> None:
    env = production_env()
    del env["APP_ENV"]
    assert load_settings(env).is_production
    del env["REDIS_URL"]
    assert "REDIS_URL is required in production" in problems_of(env)


def test_database_url_is_required_in_production() -> None:
    message = problems_of(production_env(DATABASE_URL=""))
    assert "DATABASE_URL is required in production" in message
    assert "postgresql+psycopg://" in message  # with an example of what to set


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "changeme"}, "SECRET_KEY"),
        ({"SECRET_KEY": "short-but-not-empty"}, "SECRET_KEY"),
        ({"SECRET_KEY": "a" * 64}, "SECRET_KEY"),
        ({"REDIS_URL": ""}, "REDIS_URL"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
        ({"TOKEN_ENCRYPTION_KEY": ""}, "TOKEN_ENCRYPTION_KEY"),
        ({"TOKEN_ENCRYPTION_KEY": "not-a-fernet-key"}, "TOKEN_ENCRYPTION_KEY"),
        ({URL_VARIABLE: "http://provider.example.com"}, URL_VARIABLE),
        ({URL_VARIABLE: "not a url"}, URL_VARIABLE),
        ({"PUBLIC_URL": "http://app.example.com"}, "PUBLIC_URL"),
        ({"PUBLIC_URL": "https://app.example.com/sub/path"}, "PUBLIC_URL"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"TRUSTED_PROXY_COUNT": "two"}, "TRUSTED_PROXY_COUNT"),
        ({"OAUTH_HTTP_TIMEOUT": "0"}, "OAUTH_HTTP_TIMEOUT"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "db.example.com:5432/app"}, "DATABASE_URL"),
        ({"DATABASE_URL": "redis://127.0.0.1:6379/0"}, "DATABASE_URL"),  # REDIS_URL pasted
        ({"DATABASE_URL": "https://db.example.com/app"}, "DATABASE_URL"),
    ],
)
def test_production_refuses_bad_values_naming_the_variable(overrides, variable) -> None:
    assert variable in problems_of(production_env(**overrides))


@pytest.mark.parametrize("garbage", ["not a url", "redis://127.0.0.1:6379/0"])
def test_development_refuses_a_garbage_database_url_too(garbage: str) -> None:
    message = problems_of({"APP_ENV": "development", "SECRET_KEY": "dev", "DATABASE_URL": garbage})
    assert "DATABASE_URL is not a database URL" in message


@pytest.mark.parametrize(
    ("given", "used"),
    [
        # What hosting providers hand out means psycopg 3, the driver installed.
        (
            "postgres://app:pw@db.example.com:5432/app",
            "postgresql+psycopg://app:pw@db.example.com:5432/app",
        ),
        (
            "postgresql://app:pw@db.example.com/app",
            "postgresql+psycopg://app:pw@db.example.com/app",
        ),
        (PRODUCTION_DATABASE_URL, PRODUCTION_DATABASE_URL),
        ("sqlite:////var/lib/app/app.sqlite3", "sqlite:////var/lib/app/app.sqlite3"),
    ],
)
def test_postgres_urls_are_normalised_to_psycopg(given: str, used: str) -> None:
    assert load_settings(production_env(DATABASE_URL=given)).database_url == used
    dev = {"APP_ENV": "development", "SECRET_KEY": "dev", "DATABASE_URL": given}
    assert load_settings(dev).database_url == used


def test_development_defaults_to_sqlite_in_the_instance_folder(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"APP_ENV": "development", "SECRET_KEY": "dev"})
    assert settings.database_url == f"sqlite:///{Path.cwd() / 'instance' / (PACKAGE + '.sqlite3')}"


def test_every_problem_is_reported_at_once() -> None:
    message = problems_of(production_env(SECRET_KEY="", REDIS_URL=""))
    assert "SECRET_KEY" in message and "REDIS_URL" in message


def test_loopback_http_provider_urls_are_allowed_in_production() -> None:
    settings = load_settings(production_env(**{URL_VARIABLE: "http://127.0.0.1:9000/x"}))
    assert settings.providers[PROVIDER.name].extra[URL_VARIABLE] == "http://127.0.0.1:9000/x"


def test_development_tolerates_a_weak_key_but_not_a_missing_one() -> None:
    dev = {"APP_ENV": "development", "SECRET_KEY": "dev"}
    assert load_settings(dev).app_env == "development"
    assert "SECRET_KEY" in problems_of({"APP_ENV": "development"})


@pytest.mark.parametrize("missing", ["_CLIENT_ID", "_CLIENT_SECRET"])
def test_a_provider_needs_both_credentials(missing: str) -> None:
    env = production_env()
    del env[PROVIDER.env_prefix + missing]
    settings = load_settings(env)
    assert PROVIDER.name not in settings.providers
    assert PROVIDER.env_prefix in settings.disabled_providers[PROVIDER.name]


def test_several_encryption_keys_are_accepted() -> None:
    other = "mS0hHcTGWj3uYwRkVfM8yv0Bq6l3v2mB2nT8x9kZb1Q="
    settings = load_settings(production_env(TOKEN_ENCRYPTION_KEY=f"{TEST_TOKEN_KEY}, {other}"))
    assert settings.token_encryption_keys == (TEST_TOKEN_KEY, other)


def test_development_without_redis_url_uses_the_emulation_and_says_so(
    caplog, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # nor DATABASE_URL: the default SQLite file goes to ./instance/
    with caplog.at_level(logging.WARNING):
        app = create_app({"APP_ENV": "development", "SECRET_KEY": TEST_SECRET_KEY})
    assert any("in-process Redis emulation" in r.getMessage() for r in caplog.records)
    assert app.test_client().get("/healthz").json == {"status": "ok"}
    assert (tmp_path / "instance" / f"{PACKAGE}.sqlite3").is_file()  # created and migrated
