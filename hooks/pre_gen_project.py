"""Refuse answers that would bake a broken project, with a one-line reason each."""

import keyword
import re
import sys

PROJECT_NAME = {{cookiecutter.project_name | tojson}}
PACKAGE_NAME = {{cookiecutter.package_name | tojson}}
PROVIDERS = {
    "google": "{{ cookiecutter.use_google }}",
    "github": "{{ cookiecutter.use_github }}",
    "facebook": "{{ cookiecutter.use_facebook }}",
}
# They end up inside Python and TOML string literals.
TEXT_FIELDS = {
    "project_description": {{cookiecutter.project_description | tojson}},
    "author_name": {{cookiecutter.author_name | tojson}},
    "author_email": {{cookiecutter.author_email | tojson}},
}
# Names that would shadow a module the baked app or its tests import.
RESERVED = set(sys.stdlib_module_names) | {
    "flask",
    "authlib",
    "redis",
    "requests",
    "werkzeug",
    "jinja2",
    "click",
    "dotenv",
    "fakeredis",
    "gunicorn",
    "cryptography",
    "pytest",
    "test",
    "tests",
    "mock_providers",
    "app",
}


def fail(message: str) -> None:
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", PROJECT_NAME):
        fail(
            f"project_name {PROJECT_NAME!r} is invalid: use lowercase letters, digits and "
            "single '-' between words, starting with a letter (e.g. my-login-app)."
        )
    if not PACKAGE_NAME.isidentifier() or keyword.iskeyword(PACKAGE_NAME):
        fail(f"package_name {PACKAGE_NAME!r} is not a valid Python identifier.")
    if PACKAGE_NAME in RESERVED:
        fail(f"package_name {PACKAGE_NAME!r} would shadow an existing module: pick another name.")
    if not any(value == "True" for value in PROVIDERS.values()):
        fail("no provider selected: set at least one of use_google, use_github, use_facebook.")
    for name, value in TEXT_FIELDS.items():
        if any(ch in value for ch in '"\\\n') or not value.strip():
            fail(f"{name} must be a non-empty single line without double quotes or backslashes.")


main()
