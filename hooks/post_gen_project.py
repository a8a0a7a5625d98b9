"""Drop disabled providers' files, write .env with fresh secrets, print the next steps.

cookiecutter renders this file with Jinja and runs it from the baked project's root, after
pre_gen_project.py has checked the names (so they render safely inside string literals).
"""

import base64
import os
import secrets
import shutil
from pathlib import Path

PROJECT = Path.cwd()
PROJECT_NAME = "{{ cookiecutter.project_name }}"
PACKAGE = "{{ cookiecutter.package_name }}"
# Booleans render as "True" / "False".
ENABLED = {
    "google": "{{ cookiecutter.use_google }}" == "True",
    "github": "{{ cookiecutter.use_github }}" == "True",
    "facebook": "{{ cookiecutter.use_facebook }}" == "True",
    "gitlab": "{{ cookiecutter.use_gitlab }}" == "True",
    "microsoft": "{{ cookiecutter.use_microsoft }}" == "True",
    "sso": "{{ cookiecutter.use_oidc }}" == "True",  # any OpenID Connect provider (use_oidc)
}
PROVIDERS = {
    # name: (title, where to register the callback URL, what the console calls the credentials)
    "google": (
        "Google",
        "in the Google Cloud console: https://console.cloud.google.com/apis/credentials",
        "OAuth client ID and secret",
    ),
    "github": (
        "GitHub",
        "in your GitHub developer settings: https://github.com/settings/developers",
        "OAuth App client ID and secret",
    ),
    "facebook": (
        "Facebook",
        "at Meta for Developers: https://developers.facebook.com/apps",
        "App ID and App Secret",
    ),
    "gitlab": (
        "GitLab",
        "in your GitLab user settings, Applications: https://gitlab.com/-/user_settings/applications",
        "Application ID and Secret",
    ),
    "microsoft": (
        "Microsoft",
        "in the Microsoft Entra admin center, App registrations: "
        "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade",
        "Application (client) ID and a client secret's Value",
    ),
    "sso": (
        "single sign-on",
        "as a confidential client of your identity provider (set OIDC_ISSUER to its issuer URL)",
        "client ID and secret",
    ),
}
# The variables' prefix where it is not the provider's name.
ENV_PREFIXES = {"sso": "OIDC"}
SCREENSHOT_PROVIDERS = ("google", "github", "facebook")
LOCAL_URL = "http://127.0.0.1:5000"
# MIT, BSD-3-Clause, Apache-2.0 or none (cookiecutter refuses any other choice).
LICENSE = "{{ cookiecutter.license }}"


def belongs_to(filename: str, name: str) -> bool:
    """The naming convention of provider-only files: <p>.*, <p>_*, test_<p>.py, test_<p>_*.

    e.g. providers/facebook.py, auth/facebook_callbacks.py, static/facebook.svg,
    templates/facebook_data_deletion.html, mock_providers/facebook.py, tests/test_facebook.py.
    Only file names count, never directories: the package may be called github_login.
    """
    stem = filename.split(".", 1)[0].removeprefix("test_")
    return stem == name or stem.startswith(f"{name}_")


def provider_files(name: str) -> list[Path]:
    """Every file that belongs to one provider only."""
    return sorted(p for p in PROJECT.rglob("*") if p.is_file() and belongs_to(p.name, name))


def remove_disabled_providers() -> None:
    for name, enabled in ENABLED.items():
        if not enabled:
            for path in provider_files(name):
                path.unlink(missing_ok=True)
    # The README's pictures show the sign-in page with these three (taken by
    # tests/test_github_screenshots.py with just these three configured, whatever else is baked).
    if not all(ENABLED[name] for name in SCREENSHOT_PROVIDERS):
        shutil.rmtree(PROJECT / "docs" / "screenshots", ignore_errors=True)
        if (PROJECT / "docs").is_dir() and not any((PROJECT / "docs").iterdir()):
            (PROJECT / "docs").rmdir()


def remove_conformance_suite() -> None:
    """conformance/ (npm's oidc-provider) tests the generic OpenID Connect provider only."""
    if not ENABLED["sso"]:
        shutil.rmtree(PROJECT / "conformance", ignore_errors=True)


def remove_license_file() -> None:
    """license=none: no LICENSE file (it rendered empty), and pyproject.toml claims none."""
    if LICENSE == "none":
        (PROJECT / "LICENSE").unlink(missing_ok=True)


def remove_tool_caches() -> None:
    """Caches that a test or lint run inside the template directory would leak into a bake."""
    for pattern in ("__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info"):
        for path in list(PROJECT.rglob(pattern)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def fresh_values() -> dict[str, str]:
    return {
        "APP_ENV": "development",
        "SECRET_KEY": secrets.token_urlsafe(48),
        # The format of cryptography's Fernet.generate_key(), without importing it here.
        "TOKEN_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }


def write_env() -> None:
    """.env: .env.example with fresh secrets filled in. .env.example keeps its empty values."""
    values = fresh_values()
    lines = []
    for line in (PROJECT / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and name in values:
            line = f"{name}={values.pop(name)}"
        lines.append(line)
    lines += [f"{name}={value}" for name, value in values.items()]  # missing from the example
    env = PROJECT / ".env"
    env.unlink(missing_ok=True)  # a re-bake over an old project: create it afresh, private
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")


def print_next_steps() -> None:
    enabled = [name for name, on in ENABLED.items() if on]
    titles = [PROVIDERS[name][0] for name in enabled]
    listed = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]
    steps = [
        "",
        f"Baked {PROJECT_NAME}/ with Sign in with {listed}.",
        ".env has a fresh SECRET_KEY and TOKEN_ENCRYPTION_KEY (it is git-ignored).",
        "",
        "Next steps:",
        f"  cd {PROJECT_NAME}",
        "  python -m venv .venv && . .venv/bin/activate",
        "  pip install -e '.[dev]'",
        "  python -m mock_providers.demo     # try it now with local mock providers",
        "",
        "To sign in with the real providers, register each callback URL below, put the",
        "client id and secret you get in .env, then run the app:",
    ]
    for name in enabled:
        title, console, credentials = PROVIDERS[name]
        prefix = ENV_PREFIXES.get(name, name.upper())
        variables = f"{prefix}_CLIENT_ID / {prefix}_CLIENT_SECRET"
        steps += [
            f"  {title}: {LOCAL_URL}/auth/{name}/callback",
            f"    register it {console}",
            f"    {credentials} -> {variables}",
        ]
    steps += [
        f"  flask --app {PACKAGE} run",
        f"and open {LOCAL_URL} (not localhost: the callback URLs must match exactly).",
        "",
    ]
    print("\n".join(steps))


remove_disabled_providers()
remove_conformance_suite()
remove_license_file()
remove_tool_caches()
write_env()
print_next_steps()
