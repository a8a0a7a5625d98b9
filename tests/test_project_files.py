"""The baked project's tooling: Dockerfile (hadolint), CI workflow (actionlint), pre-commit,
Makefile, LICENSE, and the template's `make demo PORT=… MOCK_PORT=…`.

The container files' own checks (compose.yaml, the image's commands against a real Redis and
PostgreSQL) are the baked tests/test_container.py, run with each baked suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import requests
from baking import TEMPLATE, bake
from test_baked_projects import baked_suite_environment

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A tool requirements-test.txt installs next to this interpreter."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is missing: run `make test` (it installs requirements-test.txt)")
    return str(path)


def run(command: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=300,
        **kwargs,
    )


# --- linters of the container and CI files ---------------------------------------------------


def test_the_dockerfile_passes_hadolint(combination) -> None:
    _, project = combination
    result = run([tool("hadolint"), "--failure-threshold", "style", "Dockerfile"], project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_ci_workflow_passes_actionlint(combination) -> None:
    _, project = combination
    workflow = project / ".github" / "workflows" / "ci.yml"
    result = run([tool("actionlint"), str(workflow.relative_to(project))], project)
    assert result.returncode == 0, result.stdout + result.stderr
    text = workflow.read_text()
    for step in ("make lint", "make typecheck", "make test", "TEST_DATABASE: postgresql"):
        assert step in text, step
    assert "apt-get install -y --no-install-recommends redis-server chromium" in text


def test_actionlint_and_hadolint_do_fail_on_mistakes(tmp_path: Path) -> None:
    """The two checks above can fail: each tool rejects an obvious mistake."""
    (tmp_path / "Dockerfile").write_text("FROM python\nRUN cd /app && pip install flask\n")
    assert run([tool("hadolint"), "Dockerfile"], tmp_path).returncode != 0
    workflow = tmp_path / "ci.yml"
    workflow.write_text("on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    step: []\n")
    assert run([tool("actionlint"), str(workflow)], tmp_path).returncode != 0


# --- pre-commit -------------------------------------------------------------------------------


def test_pre_commit_runs_ruff_check_and_format(baked: dict[str, Path], tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(baked["github"], project)
    env = {
        **baked_suite_environment(),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # ruff, as an activated venv has
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
    }
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "baked"]):
        assert run([*git, *command], project, env=env).returncode == 0
    pre_commit = [tool("pre-commit"), "run", "--all-files"]
    clean = run(pre_commit, project, env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "ruff check" in clean.stdout and "ruff format" in clean.stdout
    # A badly formatted file with an unused import: both hooks object.
    (project / "tests" / "test_sloppy.py").write_text("import os\nx = {  'a':1}\n")
    assert run([*git, "add", "-A"], project, env=env).returncode == 0
    sloppy = run(pre_commit, project, env=env)
    assert sloppy.returncode != 0
    failed = [line.split(".")[0] for line in sloppy.stdout.splitlines() if "Failed" in line]
    assert failed == ["ruff check", "ruff format"], sloppy.stdout
    assert (project / "tests" / "test_sloppy.py").read_text() == 'x = {"a": 1}\n'


# --- the baked Makefile ---------------------------------------------------------------------


def test_the_baked_makefile_runs_lint_and_names_its_commands(baked: dict[str, Path]) -> None:
    project = baked["github"]
    make = ["make", f"PYTHON={sys.executable}"]
    lint = run([*make, "lint"], project)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "ruff check ." in lint.stdout and "ruff format --check ." in lint.stdout
    dry = run([*make, "-n", "dev", "test", "typecheck", "db-upgrade"], project)
    assert dry.returncode == 0, dry.stderr
    for command in (
        "-m flask --app app_github run --debug",
        "-m pytest",
        "-m mypy",
        "-m flask --app app_github db upgrade",
    ):
        assert f"{sys.executable} {command}" in dry.stdout, command
    assert "make test" in run(["make"], project).stdout  # `make` alone lists the targets


def test_make_test_says_how_to_install_what_is_missing(baked: dict[str, Path]) -> None:
    env = {**baked_suite_environment(), "PATH": "/nonexistent", "CHROMIUM_PATH": ""}
    make = shutil.which("make") or "make"
    result = run([make, f"PYTHON={sys.executable}", "test"], baked["github"], env=env)
    assert result.returncode != 0
    assert "sudo apt-get install -y redis-server" in result.stdout


# --- LICENSE --------------------------------------------------------------------------------

LICENSE_FIRST_LINES = {
    "MIT": "MIT License",
    "BSD-3-Clause": "BSD 3-Clause License",
    "Apache-2.0": "Apache License",
}


@pytest.mark.parametrize("license_name", [*LICENSE_FIRST_LINES, "none"])
def test_the_license_answer_writes_license_and_the_pyproject_field(
    tmp_path: Path, license_name: str
) -> None:
    project = bake(
        tmp_path / "out", project_name="licensed", author_name="Ada Lovelace", license=license_name
    )
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    license_file = project / "LICENSE"
    if license_name == "none":
        assert not license_file.exists()
        assert "license" not in metadata and "license-files" not in metadata
        return
    text = license_file.read_text()
    assert text.strip().splitlines()[0].strip() == LICENSE_FIRST_LINES[license_name]
    assert text.endswith("\n") and not text.endswith("\n\n")
    if license_name != "Apache-2.0":  # Apache's text names no copyright holder
        assert f"{time.gmtime().tm_year}" in text and "Ada Lovelace" in text
    assert metadata["license"] == license_name
    assert metadata["license-files"] == ["LICENSE"]


def test_an_unknown_license_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="GPL-3.0"):
        bake(tmp_path / "out", project_name="licensed", license="GPL-3.0")


# --- make demo PORT=… MOCK_PORT=… ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_make_demo_serves_the_app_and_the_mocks_on_the_ports_given(tmp_path: Path) -> None:
    """The template's `make demo`, into a demo folder of this test (its own venv)."""
    port, mock_port = free_port(), free_port()
    demo_dir = tmp_path / "demo"
    log = tmp_path / "demo.log"
    command = ["make", f"DEMO_DIR={demo_dir}", f"PORT={port}", f"MOCK_PORT={mock_port}", "demo"]
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=TEMPLATE,
            env=baked_suite_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make, the demo and the app: one process group to stop
        )
    try:
        deadline = time.monotonic() + 400  # a fresh venv: pip installs the project's [dev]
        while time.monotonic() < deadline:
            assert process.poll() is None, f"make demo exited:\n{log.read_text()[-3000:]}"
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        else:
            pytest.fail(f"the demo did not answer on :{port}:\n{log.read_text()[-3000:]}")
        login = requests.get(f"http://127.0.0.1:{port}/login/github", allow_redirects=False)
        assert login.headers["Location"].startswith(f"http://127.0.0.1:{mock_port}/")
        assert requests.get(login.headers["Location"], timeout=5).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
