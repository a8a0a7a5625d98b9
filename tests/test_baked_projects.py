"""Each baked combination is fully rendered, ruff-clean, and passes its own test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

JINJA_MARKERS = ("{{", "}}", "{%", "%}")


def text_files(project: Path):
    for path in sorted(project.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            try:
                yield path, path.read_text()
            except UnicodeDecodeError:
                continue


def test_nothing_is_left_unrendered(combination) -> None:
    _, project = combination
    checked = 0
    for path, text in text_files(project):
        checked += 1
        assert "cookiecutter" not in text, f"{path} mentions cookiecutter"
        if "templates" not in path.parts:  # Flask's Jinja templates use {{ }} on purpose
            for marker in JINJA_MARKERS:
                assert marker not in text, f"{path} contains {marker!r}"
    assert checked > 40


def test_project_and_package_names_are_applied(combination) -> None:
    name, project = combination
    assert project.name == f"app-{name}"
    assert (project / "src" / f"app_{name}" / "__init__.py").exists()
    assert f'name = "app-{name}"' in (project / "pyproject.toml").read_text()


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff_is_clean(combination, command: list[str]) -> None:
    _, project = combination
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_baked_test_suite_passes(combination) -> None:
    """Runs last in each combination (slowest): the project's own pytest, as a user would."""
    _, project = combination
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
    assert result.returncode == 0, tail
    assert " passed" in tail and " failed" not in tail
