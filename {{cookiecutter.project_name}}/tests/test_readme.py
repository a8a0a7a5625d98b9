"""The README stays true: its Layout names every module of the package."""

from __future__ import annotations

import re

from conftest import PROJECT_ROOT

PACKAGE = "{{ cookiecutter.package_name }}"
SOURCE = PROJECT_ROOT / "src" / PACKAGE


def layout_block() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    match = re.search(r"^## Layout\n.*?^```\n(.*?)^```", readme, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no Layout section with a code block"
    return match.group(1)


def test_the_layout_names_every_module() -> None:
    named = {line.split()[0] for line in layout_block().splitlines() if line.startswith("  ")}
    modules = {
        path.relative_to(SOURCE).as_posix()
        for path in SOURCE.rglob("*.py")
        if "migrations" not in path.parts
        and not (
            path.name == "__init__.py" and path.parent != SOURCE and path.parent.name != "providers"
        )
    }
    assert modules, "no module found"
    assert not modules - named, f"not in the README's Layout: {sorted(modules - named)}"
    files = {name for name in named if name.endswith(".py")}
    assert not files - modules, f"named in the Layout but gone: {sorted(files - modules)}"
