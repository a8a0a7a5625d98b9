"""The pre-generation hook refuses bad answers; the post-generation hook finishes the project."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import COMBINATIONS, PROVIDERS, TEMPLATE, bake
from cookiecutter.exceptions import FailedHookException


def run_cookiecutter(output_dir: Path, *answers: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            str(TEMPLATE),
            "--no-input",
            "-o",
            str(output_dir),
            *answers,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    "name", ["My App", "1app", "app_", "-app", "app-", "ap--p", "App", "class", "test", "redis"]
)
def test_invalid_project_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(FailedHookException):
        bake(tmp_path, project_name=name)
    assert list(tmp_path.iterdir()) == []


def test_refusal_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cookiecutter(tmp_path, "project_name=My App")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1
    assert "project_name 'My App' is invalid" in errors[0] and "lowercase" in errors[0]
    assert list(tmp_path.iterdir()) == []


def test_no_provider_at_all_is_refused(tmp_path: Path) -> None:
    result = run_cookiecutter(tmp_path, "use_google=no", "use_github=no", "use_facebook=no")
    assert result.returncode != 0
    assert "ERROR: no provider selected" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_quotes_in_the_description_are_refused(tmp_path: Path) -> None:
    result = run_cookiecutter(tmp_path, 'project_description=say "hi"')
    assert result.returncode != 0
    assert "ERROR: project_description" in result.stderr


def test_next_steps_name_each_callback_and_console(tmp_path: Path) -> None:
    result = run_cookiecutter(tmp_path, "use_facebook=no")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "http://127.0.0.1:5000/auth/google/callback" in out
    assert "https://console.cloud.google.com/apis/credentials" in out
    assert "http://127.0.0.1:5000/auth/github/callback" in out
    assert "https://github.com/settings/developers" in out
    assert "facebook" not in out.lower()
    assert "pip install -e '.[dev]'" in out and "flask --app flask_social_login run" in out


def env_values(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )


def test_env_has_fresh_secrets(baked: dict[str, Path]) -> None:
    values = [env_values(p / ".env") for p in baked.values()]
    for env in values:
        assert env["APP_ENV"] == "development"
        assert len(env["SECRET_KEY"]) >= 43
        assert len(base64.urlsafe_b64decode(env["TOKEN_ENCRYPTION_KEY"])) == 32
    assert len({env["SECRET_KEY"] for env in values}) == len(values)
    assert len({env["TOKEN_ENCRYPTION_KEY"] for env in values}) == len(values)


def test_env_is_private_and_git_ignored(baked: dict[str, Path]) -> None:
    project = baked["all"]
    assert (project / ".env").stat().st_mode & 0o077 == 0
    assert ".env" in (project / ".gitignore").read_text().splitlines()
    example = env_values(project / ".env.example")
    assert example["SECRET_KEY"] == "" and example["TOKEN_ENCRYPTION_KEY"] == ""


def test_disabled_providers_leave_nothing_behind(combination) -> None:
    name, project = combination
    enabled = COMBINATIONS[name]
    package = project / "src" / f"app_{name}"
    for provider in PROVIDERS:
        files = [
            package / "providers" / f"{provider}.py",
            package / "static" / f"{provider}.svg",
            project / "mock_providers" / f"{provider}.py",
            project / "tests" / f"test_{provider}.py",
        ]
        for path in files:
            assert path.exists() == (provider in enabled), path
        variable = f"{provider.upper()}_CLIENT_ID"
        for text_file in (".env", ".env.example", "README.md"):
            mentions = variable in (project / text_file).read_text()
            assert mentions == (provider in enabled) or text_file == "README.md"
        registry = (package / "providers" / "__init__.py").read_text()
        assert (f"from .{provider} import" in registry) == (provider in enabled)
        mock_registry = (project / "mock_providers" / "__init__.py").read_text()
        assert (f'"{provider}"' in mock_registry) == (provider in enabled)
