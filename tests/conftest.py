"""Bake each answer combination once per test session; run the slow tests last."""

from __future__ import annotations

from pathlib import Path

import pytest
from baking import COMBINATIONS, answers, bake


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: runs a baked project's own test suite (minutes); runs last"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Quick checks first, so a broken bake is reported in seconds; the sort is stable.
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


@pytest.fixture(scope="session")
def baked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """combination name -> baked project (app-<name>), each baked once for the session."""
    return {
        name: bake(
            tmp_path_factory.mktemp(f"bake-{name}"), project_name=f"app-{name}", **answers(enabled)
        )
        for name, enabled in COMBINATIONS.items()
    }


@pytest.fixture(params=list(COMBINATIONS))
def combination(request: pytest.FixtureRequest, baked: dict[str, Path]) -> tuple[str, Path]:
    """(combination name, its baked project), for each combination."""
    return request.param, baked[request.param]
