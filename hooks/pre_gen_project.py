"""Refuse answers that would bake a broken project: one `ERROR:` line on stderr, exit 1.

cookiecutter renders this file with Jinja before running it. Each text answer is rendered
with `tojson` (which escapes every `'`) inside a single-quoted raw string and read back with
`json.loads`, so any text (quotes, backslashes, newlines) arrives intact, and the file is
valid, lint-clean Python before rendering too.
"""

import json
import keyword
import re
import sys

# The quotes must stay single (see the docstring): no reformatting here.
# fmt: off
PROJECT_NAME = json.loads(r'{{ cookiecutter.project_name | tojson }}')
PACKAGE_NAME = json.loads(r'{{ cookiecutter.package_name | tojson }}')
# Booleans render as "True" / "False".
PROVIDERS = {
    "use_google": "{{ cookiecutter.use_google }}",
    "use_github": "{{ cookiecutter.use_github }}",
    "use_facebook": "{{ cookiecutter.use_facebook }}",
    "use_gitlab": "{{ cookiecutter.use_gitlab }}",
    "use_microsoft": "{{ cookiecutter.use_microsoft }}",
    "use_oidc": "{{ cookiecutter.use_oidc }}",
}
# They end up inside Python and TOML string literals of the baked project.
TEXT_FIELDS = {
    "project_description": json.loads(r'{{ cookiecutter.project_description | tojson }}'),
    "author_name": json.loads(r'{{ cookiecutter.author_name | tojson }}'),
    "author_email": json.loads(r'{{ cookiecutter.author_email | tojson }}'),
}
# fmt: on

# Lowercase letters and digits, words joined by single hyphens, starting with a letter.
PROJECT_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")

# Top-level names the baked app, its tests or its tools import: a package with one of
# these names would shadow it.
RESERVED = set(sys.stdlib_module_names) | {
    "app",
    "authlib",
    "blinker",
    "cachelib",
    "click",
    "cryptography",
    "dotenv",
    "fakeredis",
    "flask",
    "flask_session",
    "gunicorn",
    "itsdangerous",
    "jinja2",
    "joserfc",
    "markupsafe",
    "mock_providers",
    "msgspec",
    "mypy",
    "playwright",
    "probe_app",
    "pytest",
    "redis",
    "requests",
    "ruff",
    "secure",
    "src",
    "test",
    "tests",
    "urllib3",
    "werkzeug",
    "yaml",
}


def fail(message: str) -> None:
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    if not PROJECT_NAME_RE.fullmatch(PROJECT_NAME):
        fail(
            f"project_name {PROJECT_NAME!r} is invalid: use lowercase letters and digits, "
            "words joined by single '-', starting with a letter and not ending with '-' "
            "(e.g. project_name=my-login-app)."
        )
    if not PACKAGE_NAME.isidentifier() or keyword.iskeyword(PACKAGE_NAME):
        fail(
            f"package_name {PACKAGE_NAME!r} is not a valid Python package name: choose "
            "another project_name (or package_name), e.g. my-login-app."
        )
    if PACKAGE_NAME in RESERVED:
        fail(
            f"package_name {PACKAGE_NAME!r} would shadow the module {PACKAGE_NAME!r} that "
            f"Python or the app needs: choose another project_name, e.g. {PACKAGE_NAME}-app."
        )
    if not any(value == "True" for value in PROVIDERS.values()):
        fail(f"no sign-in provider selected: set at least one of {', '.join(PROVIDERS)} to yes.")
    for name, value in TEXT_FIELDS.items():
        if not value.strip() or any(ch in value for ch in '"\\\r\n'):
            fail(f"{name} must be a non-empty single line without double quotes or backslashes.")


main()
