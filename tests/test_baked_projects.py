"""Each baked combination is fully rendered, ruff-clean, and passes its own test suite."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from baking import COMBINATIONS, PROVIDER_VARIABLES, QUESTIONS, TEMPLATE, bake, text_files

# What any unrendered Jinja leftover starts with. The closing "}}" and "%}" alone are not
# checked: Python has them legitimately ({**{k: v}}, f"{ratio:.0%}").
JINJA_OPENERS = ("{{", "{%")
# The app's settings: a value from the machine running the tests must not reach the baked
# suites (CI runners set GITHUB_API_URL, a developer may have REDIS_URL pointing at 6379).
APP_VARIABLES = re.compile(
    r"(APP_ENV|SECRET_KEY|TOKEN_ENCRYPTION_KEY|REDIS_URL|DATABASE_URL|PUBLIC_URL|TRUSTED_PROXY_COUNT"
    r"|ADMIN_EMAILS|OAUTH_HTTP_TIMEOUT|REVOKE_ON_LOGOUT|FLASK_.*"
    r"|(GOOGLE|GITHUB|FACEBOOK|GITLAB|MICROSOFT|OIDC)_.*)"
)


def test_nothing_is_left_unrendered(combination) -> None:
    _, project = combination
    checked = 0
    for path, text in text_files(project):
        checked += 1
        assert "cookiecutter" not in text, f"{path} mentions cookiecutter"
        if "templates" not in path.relative_to(project).parts:  # Jinja templates of the app
            for marker in JINJA_OPENERS:
                assert marker not in text, f"{path} contains {marker!r}"
    assert checked > 30


# Markdown links and images: [text](target) and ![alt](target).
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_of_the_readmes_resolves(combination) -> None:
    """The screenshots go with the bakes that have every provider, and so do their links."""
    name, project = combination
    readmes = sorted(project.rglob("README.md"))
    checked = 0
    for readme in readmes:
        for target in MARKDOWN_LINK.findall(readme.read_text()):
            if urlsplit(target).scheme or target.startswith(("#", "/")):
                continue
            checked += 1
            path = (readme.parent / target.split("#", 1)[0]).resolve()
            assert path.exists(), f"{readme.relative_to(project)} links to missing {target}"
    shots = project / "docs" / "screenshots"
    assert shots.is_dir() == (name == "all")
    assert (project / "docs").is_dir() == (name == "all"), "an empty docs/ is left"
    if name == "all":
        assert checked >= 2


def test_project_and_package_names_are_applied(combination) -> None:
    name, project = combination
    assert project.name == f"app-{name}"
    assert (project / "src" / f"app_{name}" / "__init__.py").is_file()
    assert f'name = "app-{name}"' in (project / "pyproject.toml").read_text()
    assert not list(project.rglob("*flask_social_login*"))


# Every provider the template offers: its `use_<name>` questions.
ASKED = {question: provider for provider, question in QUESTIONS.items()}
OFFERED = tuple(
    ASKED[key]
    for key in json.loads((TEMPLATE / "cookiecutter.json").read_text())
    if key.startswith("use_")
)
# How text names a provider: by its name; the generic OpenID Connect one by its module's name,
# its title and its variables (not by "oidc": the OpenID Connect base of every bake has that).
TERMS = {provider: (provider,) for provider in OFFERED} | {
    "sso": ("sso", "single sign-on", "use_oidc", *PROVIDER_VARIABLES["sso"])
}
PROVIDER_OF = {term.lower(): provider for provider, terms in TERMS.items() for term in terms}
# Text that names GitHub without being the provider: GitHub Actions and their .github/
# folder (whose files are not searched either).
NOT_THE_PROVIDER = re.compile(r"\.github/|GitHub Actions")


def mentions(providers: tuple[str, ...] | list[str]) -> re.Pattern[str]:
    """A provider's terms in any case, not inside a longer word's tail: Facebook, github.py,
    app_google, GOOGLE_CLIENT_ID (its variables), `use_gitlab`, MicrosoftProvider."""
    terms = (re.escape(term) for provider in providers for term in TERMS[provider])
    return re.compile(rf"(?<![a-z])(?:{'|'.join(terms)})", re.IGNORECASE)


def test_a_disabled_provider_leaves_no_text_behind(combination) -> None:
    """No file of a bake names a provider it was baked without, in code, comments or docs.

    No exceptions: the project's description defaults to the chosen providers, `.env` holds
    what `.env.example` does, and the post-generation hook removes each left-out provider's
    own files.
    """
    name, project = combination
    left_out = [provider for provider in OFFERED if provider not in COMBINATIONS[name]]
    found, seen = [], set()
    for path, text in text_files(project):
        relative = path.relative_to(project)
        if relative.parts[0] == ".github":
            continue
        for number, line in enumerate(text.splitlines(), 1):
            line = NOT_THE_PROVIDER.sub("", line)
            seen.update(PROVIDER_OF[match.lower()] for match in mentions(OFFERED).findall(line))
            if left_out and mentions(left_out).search(line):
                found.append(f"{relative}:{number}: {line.strip()[:140]}")
    assert not found, f"app-{name} names providers it has not ({', '.join(left_out)}):\n" + (
        "\n".join(found)
    )
    assert seen == set(COMBINATIONS[name]), seen  # the search finds the ones it has


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(combination, command: list[str]) -> None:
    _, project = combination
    result = ruff(project, *command)
    assert result.returncode == 0, result.stdout + result.stderr


def ruff(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_ruff_is_clean_whatever_the_package_sorts_after(tmp_path: Path) -> None:
    """Import order must not depend on the name: `zebra_login` sorts after `mock_providers`,
    the combinations' `app_*` before it (the baked isort settings name both)."""
    project = bake(tmp_path, project_name="zebra-login")
    for command in (["check"], ["format", "--check"]):
        result = ruff(project, *command)
        assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean(combination) -> None:
    """The type checker the baked CI runs, with the configuration of the baked pyproject."""
    _, project = combination
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", os.devnull],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def baked_suite_environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")
        and not APP_VARIABLES.fullmatch(name)
    }


def assert_suite_passed(result: subprocess.CompletedProcess[str], log: Path, what: str) -> None:
    """A baked suite's run passed; else fail with its failures (all of its output in `log`)."""
    output = result.stdout + result.stderr
    if result.returncode != 0:
        log.write_text(output)
        pytest.fail(
            f"{what} failed (exit {result.returncode}); "
            f"full output in {log}:\n{failure_report(output)}",
            pytrace=False,
        )
    # pytest's summary: the last line saying "passed" (make may print lines after it).
    summary = next((line for line in reversed(output.splitlines()) if " passed" in line), "")
    assert " passed" in summary and "failed" not in summary and "error" not in summary, output[
        -2000:
    ]


def failure_report(output: str, limit: int = 150) -> str:
    """The failures and errors sections of a pytest run, without the list of skips."""
    lines = output.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if re.match(r"=+ (FAILURES|ERRORS) =+$", line)),
        max(len(lines) - limit, 0),
    )
    shown = [line for line in lines[start:] if not line.startswith("SKIPPED [")]
    if len(shown) > limit:
        shown = [*shown[: limit - 1], "...", shown[-1]]
    return "\n".join(shown)


def postgresql_reachable() -> bool:
    url = urlsplit(
        (os.environ.get("TEST_DATABASE_URL") or "postgresql://127.0.0.1:5432").replace(
            "+psycopg", ""
        )
    )
    try:
        socket.create_connection((url.hostname or "127.0.0.1", url.port or 5432), timeout=2).close()
    except OSError:
        return False
    return True


def suite_database(name: str) -> dict[str, str]:
    """The `all` bake runs its whole suite on PostgreSQL, the one-provider bakes on SQLite.

    Every bake also runs test_database.py's checks on both. Without a reachable PostgreSQL
    (and REQUIRE_POSTGRESQL unset) `all` runs on SQLite too, and its PostgreSQL tests skip.
    """
    if name != "all":
        return {}
    if postgresql_reachable() or os.environ.get("REQUIRE_POSTGRESQL") == "1":
        return {"TEST_DATABASE": "postgresql"}
    return {}


# This bake's suite runs with every dependency at its lowest allowed version instead
# (test_dependencies.py); the `all` bake runs the same Google tests at the newest versions.
LOWEST_VERSIONS_BAKE = "google"


# Test files whose checks hold whatever providers are baked (Redis and database outages,
# the container, servers, headers, benchmarks...; the doctor and the production guard loop
# over every provider): they run once, in the `all` bake, which has every provider. A
# single-provider bake runs the rest: every test of its provider and the cross-provider
# ones with it alone. Keeps `make test` within its time.
ONCE_IN_ALL = (
    "test_bench.py",
    "test_bench_growth.py",
    "test_container.py",
    "test_database.py",
    "test_doctor.py",
    "test_headers.py",
    "test_limits.py",
    "test_outages.py",
    "test_production_guard.py",
    "test_redis_topologies.py",
    "test_servers.py",
    "test_session_revocation.py",
    "test_sso_conformance.py",  # npm's oidc-provider; ~30 s (all and sso both have it)
    "test_user_list.py",
)


def test_the_files_run_once_are_there(baked) -> None:
    """A renamed file would otherwise run in no bake but `all`, silently, or in every one."""
    for filename in ONCE_IN_ALL:
        assert (baked["all"] / "tests" / filename).is_file(), filename


# The longest suites run in parts, each a pytest process of its own: the template's
# workers then share them out evenly, where a whole suite would keep one worker busy alone
# while the other ran out of work. Together the parts are the whole suite.
SUITE_PARTS = {"all": 2, LOWEST_VERSIONS_BAKE: 2}


def suite_files(project: Path, whole: bool, part: int = 0, parts: int = 1) -> list[str]:
    """The test files of one part: every `parts`-th file of the suite (the slow files are
    spread over the alphabet, so alternate files make even parts). Without `whole`, the
    files of ONCE_IN_ALL are left out."""
    files = sorted(
        path.relative_to(project).as_posix()
        for path in (project / "tests").glob("test_*.py")
        if whole or path.name not in ONCE_IN_ALL
    )
    return files[part::parts]


def runs_of(names: list[str]) -> list[pytest.ParameterSet]:
    """One pytest param per run of a suite: (name, part, parts), its id `all-1of2`."""
    return [
        pytest.param(name, part, parts, id=name if parts == 1 else f"{name}-{part + 1}of{parts}")
        for name in names
        for parts in [SUITE_PARTS.get(name, 1)]
        for part in range(parts)
    ]


def test_the_parts_of_a_suite_are_the_whole_suite(baked) -> None:
    """Splitting a suite loses no file and runs none twice."""
    for name, parts in SUITE_PARTS.items():
        project = baked[name]
        split = [suite_files(project, True, part, parts) for part in range(parts)]
        assert all(split), f"{name}: an empty part"
        assert sorted(f for files in split for f in files) == suite_files(project, True)
        assert len(suite_files(project, True)) > 40


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "part", "parts"), runs_of([n for n in COMBINATIONS if n != LOWEST_VERSIONS_BAKE])
)
def test_baked_test_suite_passes(baked: dict[str, Path], name: str, part: int, parts: int) -> None:
    """The project's own tests, run as its user would run them, from its root."""
    project = baked[name]
    files = suite_files(project, name == "all", part, parts)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=project,
        env={**baked_suite_environment(), **suite_database(name)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert_suite_passed(
        result,
        project.parent / f"pytest-output-{part}.txt",
        f"the test suite of app-{name} (part {part + 1} of {parts})",
    )
