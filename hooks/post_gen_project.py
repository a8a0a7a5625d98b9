"""Drop disabled providers' files, write .env with fresh secrets, print the next steps."""

import base64
import os
import secrets
from pathlib import Path

PROJECT = Path.cwd()  # cookiecutter runs hooks from the baked project's root
PROJECT_NAME = {{cookiecutter.project_name | tojson}}
PACKAGE = {{cookiecutter.package_name | tojson}}
ENABLED = {
    "google": {{cookiecutter.use_google}},
    "github": {{cookiecutter.use_github}},
    "facebook": {{cookiecutter.use_facebook}},
}
CONSOLES = {
    "google": ("Google Cloud console", "https://console.cloud.google.com/apis/credentials"),
    "github": ("GitHub developer settings", "https://github.com/settings/developers"),
    "facebook": ("Meta for Developers", "https://developers.facebook.com/apps"),
}
LOCAL_URL = "http://127.0.0.1:5000"


def provider_files(name: str) -> list[Path]:
    return [
        PROJECT / "src" / PACKAGE / "providers" / f"{name}.py",
        PROJECT / "src" / PACKAGE / "static" / f"{name}.svg",
        PROJECT / "mock_providers" / f"{name}.py",
        PROJECT / "tests" / f"test_{name}.py",
    ]


def remove_disabled_providers() -> None:
    for name, enabled in ENABLED.items():
        if not enabled:
            for path in provider_files(name):
                path.unlink(missing_ok=True)


def write_env() -> None:
    """.env from .env.example with secrets of its own: never the same twice."""
    values = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        # The format of cryptography's Fernet.generate_key(), without importing it here.
        "TOKEN_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "APP_ENV": "development",
    }
    lines = []
    for line in (PROJECT / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0].strip()
        if not line.lstrip().startswith("#") and name in values:
            line = f"{name}={values[name]}"
        lines.append(line)
    env = PROJECT / ".env"
    env.write_text("\n".join(lines) + "\n")
    env.chmod(0o600)


def print_next_steps() -> None:
    enabled = [name for name, on in ENABLED.items() if on]
    print(f"""
Baked {PROJECT_NAME}/ with {", ".join(enabled)} sign-in. Next steps:

  cd {PROJECT_NAME}
  python -m venv .venv && . .venv/bin/activate
  pip install -e '.[dev]'
  python -m mock_providers.demo        # try it now with local mock providers

To sign in with the real providers, register these callback URLs and put each
client id and secret in .env (a fresh SECRET_KEY and TOKEN_ENCRYPTION_KEY are there):
""")
    for name in enabled:
        console, url = CONSOLES[name]
        print(f"  {name:<9} {LOCAL_URL}/auth/{name}/callback")
        print(f"  {'':<9} register at the {console}: {url}")
    print(f"""
then run:  flask --app {PACKAGE} run    and open {LOCAL_URL}
""")


remove_disabled_providers()
write_env()
print_next_steps()
