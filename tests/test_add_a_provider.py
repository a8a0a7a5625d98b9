"""The baked README's "Add a provider" recipe, followed to the letter on a baked project:
the cross-provider tests pick the new provider up with no edit to any of them."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from test_add_a_model import readme_blocks, run
from test_baked_projects import baked_suite_environment

RECIPE_PROJECT = "github"  # a second provider beside it: the tests of two providers run too
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20 20">'
    '<circle cx="10" cy="10" r="9"/></svg>\n'
)


def add_line(path: Path, after: str, line: str) -> None:
    """Put `line` right after the registry line `after` (the first provider's)."""
    text = path.read_text()
    assert after in text, f"{path} has no {after!r}"
    path.write_text(text.replace(after, after + line, 1))


@pytest.mark.slow
def test_the_add_a_provider_recipe_works(baked: dict[str, Path], tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(baked[RECIPE_PROJECT], project)
    package = project / "src" / f"app_{RECIPE_PROJECT}"
    blocks = readme_blocks((project / "README.md").read_text(), "Add a provider")
    (adapter, registry_line, variables, mock, commands) = (code for _, code in blocks)

    # 1-2. The adapter and its registry line.
    (package / "providers" / "keycloak.py").write_text(adapter)
    first = f'    "{RECIPE_PROJECT}",\n'
    add_line(package / "providers" / "__init__.py", first, registry_line)
    # 3. An icon, and the variables.
    (package / "static" / "keycloak.svg").write_text(ICON)
    with (project / ".env.example").open("a") as env_example:
        env_example.write("\n" + variables)
    # 4-5. The mock and its registry line, as step 5 spells it.
    (project / "mock_providers" / "keycloak.py").write_text(mock)
    add_line(project / "mock_providers" / "__init__.py", first, '    "keycloak",\n')

    env = {
        **baked_suite_environment(),
        "PYTHONPATH": os.pathsep.join([str(project / "src"), str(project)]),
    }
    (command,) = commands.splitlines()
    assert command.split()[:3] == ["python", "-m", "pytest"], command
    output = run(
        [sys.executable, *command.split()[1:], "-q", "-p", "no:cacheprovider"], project, env
    )
    # Every cross-provider test took it: sign-in, linking, tokens, revocation, deletion...
    passed = int(output.rsplit(" passed", 1)[0].rsplit(maxsplit=1)[-1])
    assert passed >= 40, output[-2000:]
    run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_structure.py"],
        project,
        env,
    )
    # The recipe's code is ruff-clean and typed as it is.
    written = [f"src/app_{RECIPE_PROJECT}/providers/keycloak.py", "mock_providers/keycloak.py"]
    for ruff in (["check"], ["format", "--check"]):
        run([sys.executable, "-m", "ruff", *ruff, "--no-cache", *written], project, env)
    run([sys.executable, "-m", "mypy", "--cache-dir", os.devnull], project, env)
