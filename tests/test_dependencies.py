"""The baked pyproject.toml's dependencies are true: complete, and their lower bounds pass.

- A production install (no [dev] extra) imports every module of the package, and without
  REDIS_URL says what to do instead of failing on a missing fakeredis.
- The `google` bake's suite passes with every direct dependency at its declared lower bound
  (`uv pip install --resolution lowest-direct`): Google's OpenID Connect is where Authlib's and
  joserfc's versions matter most. The other bakes' suites run at the newest versions
  (test_baked_projects.py), the `all` bake's covering Google there too, so no suite runs twice.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from test_baked_projects import (
    LOWEST_VERSIONS_BAKE,
    assert_suite_passed,
    baked_suite_environment,
    runs_of,
    suite_files,
)

UV = Path(sys.executable).parent / "uv"
SUB_MAKE = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")  # set by the `make test` that runs us
DEV_ONLY = ("fakeredis", "pytest", "playwright", "mypy", "ruff", "yaml")


def uv(*args: str, cwd: Path | None = None) -> str:
    if not UV.exists():
        pytest.fail("uv is missing: run `make test` (it installs requirements-test.txt)")
    result = subprocess.run(
        [str(UV), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, f"uv {' '.join(args)} failed:\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def new_venv(path: Path, *install: str) -> Path:
    uv("venv", "--quiet", "--python", sys.executable, str(path))
    python = path / "bin" / "python"
    uv("pip", "install", "--quiet", "--python", str(python), *install)
    return python


def run_python(python: Path, code: str, env: dict[str, str], cwd: Path):
    return subprocess.run(
        [str(python), "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )


def dockerfile_build_copies(project: Path) -> list[str]:
    """The files and folders the Dockerfile's first stage copies from the project."""
    first_stage = project.joinpath("Dockerfile").read_text().split("\nFROM ")[1]
    sources = []
    for line in first_stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    assert "pyproject.toml" in sources and "src" in sources, sources
    return sources


IMPORT_EVERY_MODULE = """
import importlib, pkgutil
package = importlib.import_module("{package}")
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if ".migrations" not in module.name:
        importlib.import_module(module.name)
for name in {dev_only!r}:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    raise SystemExit(f"{{name}} is installed without the [dev] extra")
print("imported")
"""


@pytest.mark.slow
def test_a_production_install_imports_everything_and_explains_redis(
    baked: dict[str, Path], tmp_path: Path
) -> None:
    project = baked["all"]
    # Built from exactly what the Dockerfile's build stage copies, as the image is.
    context = tmp_path / "context"
    context.mkdir()
    for source in dockerfile_build_copies(project):
        copy = shutil.copytree if (project / source).is_dir() else shutil.copy
        copy(project / source, context / source)
    python = new_venv(tmp_path / "venv", str(context))  # not editable, no extras
    env = {**baked_suite_environment(), "SECRET_KEY": "x" * 8 + "-production-install-key-0123"}
    code = IMPORT_EVERY_MODULE.format(package="app_all", dev_only=DEV_ONLY)
    imported = run_python(python, code, env, tmp_path)
    assert imported.returncode == 0, imported.stdout + imported.stderr

    start = "from app_all import create_app; create_app()"
    development = run_python(python, start, {**env, "APP_ENV": "development"}, tmp_path)
    assert development.returncode != 0
    assert "Traceback" not in development.stderr, development.stderr
    assert "REDIS_URL is not set" in development.stderr
    assert "pip install -e '.[dev]'" in development.stderr
    production = run_python(python, start, {**env, "APP_ENV": "production"}, tmp_path)
    assert production.returncode != 0 and "Traceback" not in production.stderr
    assert "REDIS_URL is required in production" in production.stderr


def lower_bounds(project: Path) -> dict[str, str]:
    """name -> the version of each `>=` in dependencies and the [dev] extra."""
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    bounds = {}
    for line in [*metadata["dependencies"], *metadata["optional-dependencies"]["dev"]]:
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                bounds[requirement.name.lower()] = spec.version
    return bounds


def installed_versions(python: Path) -> dict[str, str]:
    listing = uv("pip", "freeze", "--python", str(python))
    versions = {}
    for line in listing.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            versions[name.lower().replace("_", "-")] = version
    return versions


@pytest.mark.slow
@pytest.mark.parametrize(("name", "part", "parts"), runs_of([LOWEST_VERSIONS_BAKE]))
def test_the_suite_passes_at_the_lowest_declared_versions(
    baked: dict[str, Path], tmp_path: Path, name: str, part: int, parts: int
) -> None:
    """Every direct dependency at its lower bound; the `google` bake's whole suite on
    SQLite, in parts (each installs the lowest versions in a venv of its own)."""
    project = baked[name]
    python = new_venv(tmp_path / "lowest", "--resolution", "lowest-direct", "-e", f"{project}[dev]")
    versions = installed_versions(python)
    wrong = {
        name: (bound, versions.get(name))
        for name, bound in lower_bounds(project).items()
        if versions.get(name) != bound and not versions.get(name, "").startswith(bound + ".")
    }
    assert not wrong, f"declared lower bound -> installed (not installable as declared): {wrong}"

    files = " ".join(suite_files(project, True, part, parts))
    result = subprocess.run(
        ["make", f"PYTHON={python}", "test", f"PYTEST_ARGS=-q -p no:cacheprovider {files}"],
        cwd=project,
        # SQLite (TEST_DATABASE unset); not a sub-make of ours (its directory lines).
        env={k: v for k, v in baked_suite_environment().items() if k not in SUB_MAKE},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert_suite_passed(
        result,
        tmp_path / "pytest-output.txt",
        f"{project.name}'s suite (part {part + 1} of {parts}) at the lowest versions ({versions})",
    )
