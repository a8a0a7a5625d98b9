"""The baked README's "Add your own model" recipe, followed to the letter on a baked project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_baked_projects import baked_suite_environment, failure_report

RECIPE_PROJECT = "github"  # any one provider will do; the recipe does not depend on it


def readme_blocks(readme: str, heading: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block in the README section under `heading`."""
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL)


def run(command: list[str], project: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        command,
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{failure_report(output)}"
    return output


@pytest.mark.slow
def test_the_add_your_own_model_recipe_works(baked: dict[str, Path], tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(baked[RECIPE_PROJECT], project)
    package = f"app_{RECIPE_PROJECT}"
    blocks = readme_blocks((project / "README.md").read_text(), "Add your own model")
    (module, registration, commands, test) = (code for _, code in blocks)

    # 1. The model and its routes, as the README shows them.
    (project / "src" / package / "notes.py").write_text(module)
    # 2. Registered in create_app(), as the README says.
    factory = project / "src" / package / "__init__.py"
    source = factory.read_text()
    import_line, register_line = (line.split("  #")[0] for line in registration.splitlines()[::2])
    assert import_line == "from . import notes"
    # Merged into the package's own import line, as ruff's import sorting wants it.
    source = source.replace(
        "\nfrom . import api, auth, pages\n", "\nfrom . import api, auth, notes, pages\n"
    )
    source = source.replace(
        "    app.register_blueprint(api.bp)\n",
        f"    app.register_blueprint(api.bp)\n    {register_line}\n",
    )
    factory.write_text(source)
    # 3. The README's commands, on the development database.
    env = {
        **baked_suite_environment(),
        "PYTHONPATH": os.pathsep.join([str(project / "src"), str(project)]),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}",
    }
    flask = [sys.executable, "-m", "flask"]
    for line in commands.splitlines():
        command = line.split("#")[0].split()
        assert command[:3] == ["flask", "--app", package], line
        run(flask + command[1:], project, env)
    (revision,) = (project / "src" / package / "migrations" / "versions").glob("*_notes.py")
    assert "create_table" in revision.read_text() and '"notes"' in revision.read_text()
    # 4. The README's test, run by the project's own suite (its database is migrated from
    # migrations/, the new revision included).
    (project / "tests" / "test_notes.py").write_text(test)
    output = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_notes.py"],
        project,
        {k: v for k, v in env.items() if k != "DATABASE_URL"},
    )
    assert "1 passed" in output, output
    # 5. The recipe's code, and the revision `db migrate` wrote, are ruff-clean as they are.
    written = [f"src/{package}/notes.py", f"src/{package}/__init__.py", "tests/test_notes.py"]
    written.append(str(revision.relative_to(project)))
    for command in (["check"], ["format", "--check"]):
        run([sys.executable, "-m", "ruff", *command, "--no-cache", *written], project, env)
    # 6. And the type checker the baked CI runs stays clean with it.
    run([sys.executable, "-m", "mypy", "--cache-dir", os.devnull], project, env)
