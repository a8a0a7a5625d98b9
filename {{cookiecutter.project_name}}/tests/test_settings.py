"""Settings are read once, validated, and a bad production config refuses to start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import TEST_SECRET_KEY, TEST_TOKEN_KEY, own_urls

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.logs import RedactingFilter
from {{ cookiecutter.package_name }}.masking import mask_url
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
        "PUBLIC_URL": "https://app.example.com",
        f"{PROVIDER.env_prefix}_CLIENT_ID": "client-id",
        f"{PROVIDER.env_prefix}_CLIENT_SECRET": "client-secret",
        **own_urls(PROVIDER),
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
        ({"PUBLIC_URL": ""}, "PUBLIC_URL"),
        ({"PUBLIC_URL": "http://app.example.com"}, "PUBLIC_URL"),
        ({"PUBLIC_URL": "https://app.example.com/sub/path"}, "PUBLIC_URL"),
        ({"PUBLIC_URL": "https://app.example.com?next=/"}, "PUBLIC_URL"),
        ({"PUBLIC_URL": "https://admin:pw@app.example.com"}, "PUBLIC_URL"),
        ({"HSTS_SECONDS": "a year"}, "HSTS_SECONDS"),
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


def test_public_url_is_required_in_production_only() -> None:
    message = problems_of(production_env(PUBLIC_URL=""))
    assert "PUBLIC_URL is required in production" in message
    assert "https://" in message  # with an example of what to set
    dev = {"APP_ENV": "development", "SECRET_KEY": "dev"}
    assert load_settings(dev).public_url is None  # development follows the Host header


@pytest.mark.parametrize("environment", ["production", "development"])
@pytest.mark.parametrize(
    ("given", "missing"), [("_CLIENT_ID", "_CLIENT_SECRET"), ("_CLIENT_SECRET", "_CLIENT_ID")]
)
def test_a_provider_with_one_credential_is_an_error_naming_the_other(
    environment: str, given: str, missing: str
) -> None:
    """Half a configuration is a typo, not a switch: silently disabling hid it until sign-in."""
    env = production_env(APP_ENV=environment)
    del env[PROVIDER.env_prefix + missing]
    message = problems_of(env)
    assert (
        f"{PROVIDER.env_prefix}{missing} is not set but {PROVIDER.env_prefix}{given} is" in message
    )
    settings = load_settings(env, strict=False)  # what the doctor sees
    assert PROVIDER.name not in settings.providers
    assert PROVIDER.env_prefix in settings.disabled_providers[PROVIDER.name]


def test_a_provider_with_neither_credential_is_simply_off() -> None:
    if len(PROVIDER_CLASSES) < 2:
        pytest.skip("baked with one provider: turning it off leaves none")
    env = production_env()
    for cls in PROVIDER_CLASSES.values():
        env.update({f"{cls.env_prefix}_CLIENT_ID": "id", f"{cls.env_prefix}_CLIENT_SECRET": "s"})
        env.update(own_urls(cls))
    del env[f"{PROVIDER.env_prefix}_CLIENT_ID"], env[f"{PROVIDER.env_prefix}_CLIENT_SECRET"]
    settings = load_settings(env)
    assert PROVIDER.name not in settings.providers
    assert set(settings.providers) == set(PROVIDER_CLASSES) - {PROVIDER.name}


def test_production_refuses_to_run_without_any_provider_naming_the_variables() -> None:
    env = production_env()
    del env[f"{PROVIDER.env_prefix}_CLIENT_ID"], env[f"{PROVIDER.env_prefix}_CLIENT_SECRET"]
    message = problems_of(env)
    assert "no sign-in provider is configured" in message
    for cls in PROVIDER_CLASSES.values():
        assert f"{cls.env_prefix}_CLIENT_ID and {cls.env_prefix}_CLIENT_SECRET" in message


def test_development_without_any_provider_starts_and_warns(
    caplog, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        app = create_app({"APP_ENV": "development", "SECRET_KEY": TEST_SECRET_KEY})
    assert not app.config["APP_SETTINGS"].providers
    assert any("no provider is configured" in r.getMessage() for r in caplog.records)


# --- no credentials in messages -------------------------------------------------------

PASSWORD = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REDIS_URL", f"redsi://:{PASSWORD}@localhost:6379/0"),  # a mistyped scheme
        ("REDIS_URL", f"localhost:{PASSWORD}@6379"),  # no scheme at all
        ("REDIS_URL", f"http://default:{PASSWORD}@cache.example.com:6379"),
        ("PUBLIC_URL", f"https://admin:{PASSWORD}@app.example.com"),
        (URL_VARIABLE, f"http://user:{PASSWORD}@provider.example.com"),
        (URL_VARIABLE, f"ftp://user:{PASSWORD}@provider.example.com"),
    ],
)
def test_a_refused_url_is_named_but_its_credentials_are_not_echoed(variable, value) -> None:
    message = problems_of(production_env(**{variable: value}))
    assert variable in message
    assert PASSWORD not in message
    assert "***@" in message  # still says where it points


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@cache:6379/0", "redis://***@cache:6379/0"),
        ("rediss://default:pw@cache:6380", "rediss://***@cache:6380"),
        ("postgresql+psycopg://app:pw@db:5432/app", "postgresql+psycopg://***@db:5432/app"),
        (
            "postgresql://db/app?sslmode=require&password=pw",
            "postgresql://db/app?sslmode=require&password=***",
        ),
        ("redis://:p/w#x@cache:6379", "redis://***@cache:6379"),  # unescaped / and # in it
        ("token-as-user@cache:6379", "***@cache:6379"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("sqlite:////var/lib/app.sqlite3", "sqlite:////var/lib/app.sqlite3"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


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


def test_log_lines_never_show_the_credentials_of_a_url() -> None:
    """What a library logs (an exception's text, a connection string) goes through the filter."""
    record = logging.LogRecord(
        "redis", logging.WARNING, __file__, 1, "cannot reach %s nor %s", None, None
    )
    record.args = (
        f"redis://default:{PASSWORD}@cache:6379/0",
        f"postgresql://app:{PASSWORD}@db/app",
    )
    RedactingFilter().filter(record)
    line = record.getMessage()
    assert PASSWORD not in line
    assert "redis://[redacted]@cache:6379/0" in line and "postgresql://[redacted]@db/app" in line
