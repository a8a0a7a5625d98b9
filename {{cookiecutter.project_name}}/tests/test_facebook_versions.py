"""Graph API versions expire (Meta's changelog): a dated table, and one default everywhere.

`auth doctor` warns 90 days before the pinned version expires and fails from that day on;
here the rule itself, with `today` given, never the calendar, and the doctor run for real.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from conftest import TODAY

from {{ cookiecutter.package_name }}.providers.facebook import (
    DEFAULT_GRAPH_VERSION,
    GRAPH_VERSIONS,
    FacebookProvider,
    graph_version,
    graph_version_finding,
    two_years_after,
)

import mock_providers.facebook as mock_facebook

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("version", "today", "status", "says"),
    [
        # v21.0, the old hard-coded "floor", expires on 2027-01-21.
        ("v21.0", date(2026, 10, 22), "ok", "served until 2027-01-21"),
        ("v21.0", date(2026, 10, 23), "warn", "expires on 2027-01-21, in 90 day"),
        ("v21.0", date(2026, 12, 7), "warn", "in 45 day"),
        ("v21.0", date(2027, 1, 21), "fail", "expired on 2027-01-21"),
        ("v20.0", date(2026, 12, 7), "fail", "expired on 2026-09-24"),
        ("v24.0", date(2027, 11, 20), "warn", "expires on 2028-02-18"),
        ("v24.0", date(2028, 2, 18), "fail", "expired"),
        ("v17.0", date(2026, 12, 7), "fail", "older than v18.0"),
        ("v2.8", date(2026, 12, 7), "fail", "older than v18.0"),
        ("v22.5", date(2026, 12, 7), "fail", "is no Graph API version"),
        # The newest version's expiry is "TBD": at least two years from its release.
        ("v26.0", date(2028, 4, 29), "ok", "served until 2028-07-29 at least"),
        ("v26.0", date(2028, 4, 30), "warn", "table of Graph versions is out of date"),
        ("v27.0", date(2026, 12, 7), "warn", "newer than this app's table"),
    ],
)
def test_graph_version_lifetime(version, today, status, says) -> None:
    finding = graph_version_finding(version, today)
    assert finding.status == status, finding
    assert says in finding.message
    if status != "ok":
        assert finding.hint


def test_the_table_follows_metas_rule() -> None:
    """Each version lives at least two years, and expires after the one before it."""
    versions = sorted(GRAPH_VERSIONS, key=graph_version)
    for version in versions:
        released, expires = GRAPH_VERSIONS[version]
        assert expires is None or expires >= two_years_after(released), version
    assert [GRAPH_VERSIONS[v][1] is None for v in versions].count(True) == 1
    assert GRAPH_VERSIONS[versions[-1]][1] is None  # only the newest is "TBD"
    expiries = [GRAPH_VERSIONS[v][1] for v in versions[:-1]]
    assert expiries == sorted(expiries)


def test_the_default_is_current_and_served_until_2028() -> None:
    assert max(GRAPH_VERSIONS, key=graph_version) == DEFAULT_GRAPH_VERSION
    released, expires = GRAPH_VERSIONS[DEFAULT_GRAPH_VERSION]
    assert (expires or two_years_after(released)) >= date(2028, 1, 1)
    day = date(2026, 12, 7)
    while day < date(2028, 1, 1):
        assert graph_version_finding(DEFAULT_GRAPH_VERSION, day).status == "ok", day
        day += timedelta(days=30)


def test_one_default_version_everywhere() -> None:
    assert FacebookProvider.option_settings["FACEBOOK_GRAPH_VERSION"] == DEFAULT_GRAPH_VERSION
    assert mock_facebook.DEFAULT_VERSION == DEFAULT_GRAPH_VERSION
    example = (PROJECT_ROOT / ".env.example").read_text()
    assert re.findall(r"^FACEBOOK_GRAPH_VERSION=(.*)$", example, re.M) == [DEFAULT_GRAPH_VERSION]
    readme = (PROJECT_ROOT / "mock_providers" / "README.md").read_text()
    assert f"`FACEBOOK_GRAPH_VERSION` (`{DEFAULT_GRAPH_VERSION}`)" in readme
    assert f"(unversioned ones use {DEFAULT_GRAPH_VERSION})" in readme


def test_the_mock_serves_the_default_version_and_unversioned_paths(mock) -> None:
    env = mock.app_env()
    assert env["FACEBOOK_GRAPH_VERSION"] == DEFAULT_GRAPH_VERSION
    for path in (f"/{DEFAULT_GRAPH_VERSION}/me", "/me"):
        error = requests.get(f"{env['FACEBOOK_GRAPH_URL']}{path}", timeout=10).json()["error"]
        assert error["code"] == 2500  # no token: the route exists and answers like Graph


# --- what the doctor says of it (moved here from test_doctor.py) --------------------------


@pytest.mark.parametrize(
    ("version", "today", "status"),
    [
        ("v24.0", "2027-11-19", "ok"),
        ("v24.0", "2027-11-20", "warn"),  # 90 days before 2028-02-18
        ("v24.0", "2028-02-18", "fail"),  # the day it expires
        ("v21.0", TODAY, "warn"),  # the old "v21.0 floor" expires on 2027-01-21
        ("v20.0", TODAY, "fail"),
    ],
)
def test_the_graph_version_is_checked_against_its_expiry(doctor, version, today, status) -> None:
    report = doctor(today=today, FACEBOOK_GRAPH_VERSION=version)
    assert report.status_of("Facebook", f"^FACEBOOK_GRAPH_VERSION {version} ") == status
    assert report.returncode == (1 if status == "fail" else 0), report.checks(status="fail")
    if status != "ok":
        (finding,) = report.checks("Facebook", status)
        assert "https://developers.facebook.com/docs/graph-api/changelog" in finding["hint"]


def test_the_default_graph_version_passes_into_2028(doctor) -> None:
    for today in (TODAY, "2027-12-31"):
        report = doctor(today=today)
        assert report.status_of("Facebook", "^FACEBOOK_GRAPH_VERSION ") == "ok"
        assert report.returncode == 0


def test_the_human_report_says_when_the_version_expires(doctor) -> None:
    report = doctor(as_json=False, today="2027-12-01", FACEBOOK_GRAPH_VERSION="v24.0")
    assert " warn  FACEBOOK_GRAPH_VERSION v24.0 expires on 2028-02-18, in 79 day(s)" in (
        report.stdout
    )
    assert "-> Set FACEBOOK_GRAPH_VERSION to v26.0" in report.stdout
