"""Bake each answer combination once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
PROVIDERS = ("google", "github", "facebook")
# combination name -> enabled providers; each gets its own project and package name
COMBINATIONS = {
    "all": PROVIDERS,
    "google": ("google",),
    "github": ("github",),
    "facebook": ("facebook",),
}


def bake(output_dir: Path, **extra: object) -> Path:
    return Path(
        cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output_dir), extra_context=extra)
    )


@pytest.fixture(scope="session")
def baked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    projects = {}
    for name, enabled in COMBINATIONS.items():
        answers = {f"use_{p}": p in enabled for p in PROVIDERS}
        projects[name] = bake(
            tmp_path_factory.mktemp(f"bake-{name}"), project_name=f"app-{name}", **answers
        )
    return projects


@pytest.fixture(params=list(COMBINATIONS))
def combination(request: pytest.FixtureRequest, baked: dict[str, Path]) -> tuple[str, Path]:
    return request.param, baked[request.param]
