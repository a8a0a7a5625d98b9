"""Baking the template from the tests, away from the user's cookiecutter config and replay."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
PROVIDERS = ("google", "github", "facebook", "gitlab", "microsoft", "sso")
# Each provider's question in cookiecutter.json: use_<provider>, but for the generic OpenID
# Connect one, whose module (providers/sso.py) is named after what it is for.
QUESTIONS = {provider: f"use_{provider}" for provider in PROVIDERS} | {"sso": "use_oidc"}
# combination name -> enabled providers; project app-<name>, package app_<name>
COMBINATIONS = {"all": PROVIDERS, **{name: (name,) for name in PROVIDERS}}
# The variables of each provider (interface.md), with their defaults where they have one.
PROVIDER_VARIABLES = {
    "google": {
        "GOOGLE_CLIENT_ID": "",
        "GOOGLE_CLIENT_SECRET": "",
        "GOOGLE_SERVER_METADATA_URL": "https://accounts.google.com/.well-known/openid-configuration",
        "GOOGLE_HOSTED_DOMAIN": "",
    },
    "github": {
        "GITHUB_CLIENT_ID": "",
        "GITHUB_CLIENT_SECRET": "",
        "GITHUB_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
    },
    "facebook": {
        "FACEBOOK_CLIENT_ID": "",
        "FACEBOOK_CLIENT_SECRET": "",
        "FACEBOOK_URL": "https://www.facebook.com",
        "FACEBOOK_GRAPH_URL": "https://graph.facebook.com",
        "FACEBOOK_GRAPH_VERSION": "v26.0",
    },
    "gitlab": {
        "GITLAB_CLIENT_ID": "",
        "GITLAB_CLIENT_SECRET": "",
        "GITLAB_URL": "https://gitlab.com",
    },
    "microsoft": {
        "MICROSOFT_CLIENT_ID": "",
        "MICROSOFT_CLIENT_SECRET": "",
        "MICROSOFT_TENANT": "common",
        "MICROSOFT_LOGIN_URL": "https://login.microsoftonline.com",
    },
    "sso": {
        "OIDC_CLIENT_ID": "",
        "OIDC_CLIENT_SECRET": "",
        "OIDC_ISSUER": "",
        "OIDC_NAME": "sso",
        "OIDC_TITLE": "Single sign-on",
        "OIDC_SCOPES": "openid email profile",
        "OIDC_END_SESSION_ON_LOGOUT": "false",
    },
}
CORE_VARIABLES = {
    "APP_ENV": "development",
    "SECRET_KEY": "",
    "TOKEN_ENCRYPTION_KEY": "",
    "REDIS_URL": "",
    "DATABASE_URL": "",
    "PUBLIC_URL": "http://127.0.0.1:5000",
    "TRUSTED_PROXY_COUNT": "0",
    "ADMIN_EMAILS": "",
    "OAUTH_HTTP_TIMEOUT": "10",
    "REQUEST_LOG": "notable",
}
CONSOLES = {
    "google": "https://console.cloud.google.com/apis/credentials",
    "github": "https://github.com/settings/developers",
    "facebook": "https://developers.facebook.com/apps",
    "gitlab": "https://gitlab.com/-/user_settings/applications",
    "microsoft": "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade",
    "sso": "confidential client of your identity provider",
}


def answers(enabled: tuple[str, ...]) -> dict[str, bool]:
    return {QUESTIONS[provider]: provider in enabled for provider in PROVIDERS}


def isolated_config(directory: Path) -> Path:
    """A cookiecutter config that keeps replay files and clones out of the user's home."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "cookiecutter-config.yaml"
    config.write_text(
        f'cookiecutters_dir: "{directory / "cookiecutters"}"\n'
        f'replay_dir: "{directory / "replay"}"\n'
    )
    return config


def bake(output_dir: Path, **extra: object) -> Path:
    """Bake with the Python API; a refused bake raises FailedHookException."""
    return Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(output_dir),
            extra_context=extra,
            config_file=str(isolated_config(output_dir.parent / f"{output_dir.name}-config")),
        )
    )


def bake_cli(output_dir: Path, *answers: str) -> subprocess.CompletedProcess[str]:
    """Bake with the command line, as a user would; stdout and stderr are captured."""
    config = isolated_config(output_dir.parent / f"{output_dir.name}-config")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            str(TEMPLATE),
            "--no-input",
            "--config-file",
            str(config),
            "-o",
            str(output_dir),
            *answers,
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )


def text_files(project: Path) -> Iterator[tuple[Path, str]]:
    """(path, text) of every text file in a baked project, caches left out."""
    caches = {"__pycache__", ".pytest_cache", ".ruff_cache"}
    for path in sorted(project.rglob("*")):
        if path.is_file() and not caches & set(path.parts):
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def env_file(path: Path) -> dict[str, str]:
    """NAME=value lines of a .env file, comments and blank lines left out."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path}: not a NAME=value line: {line!r}"
            assert name not in values, f"{path}: {name} is set twice"
            values[name] = value
    return values
