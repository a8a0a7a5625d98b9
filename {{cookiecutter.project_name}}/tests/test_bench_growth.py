"""The growth benchmark runs end to end, on small sizes, and reports what it can check exactly.

Times are not asserted (that is the benchmark's job, at 1,000 and 100,000 users, on a quiet
machine); the SQL statements and Redis round trips per request are exact, so they are: the
same at both sizes. The app runs on the database the suite runs on (TEST_DATABASE).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import PROJECT_ROOT, postgresql_server_url, require_postgresql

PAGES = [
    "GET /api/admin/users (first page)",
    "GET /api/admin/users?cursor= (middle)",
    "GET /api/admin/users?q=user1 (email)",
    "GET /api/admin/users?q=person 1 (name)",
    "GET /admin (HTML, first page)",
    "flask roles grant EMAIL admin",
]
FIXED = [
    "POST sign-out-others (S sessions)",
    "sign-in with S sessions (to the cap)",
    "GET /account (after the cap)",
    "GET /api/tokens (T tokens)",
]


def test_a_small_growth_run_keeps_queries_and_round_trips_flat(project_env) -> None:
    # The database this suite runs on (TEST_DATABASE): one at a time keeps CI short.
    database = os.environ.get("TEST_DATABASE", "sqlite")
    server = require_postgresql() if database == "postgresql" else postgresql_server_url()
    # At 600 users, "user1" and "person 1" each start over 100 emails or names: full pages.
    command = [sys.executable, "-m", "bench.growth", "--small", "600", "--large", "3000"]
    command += ["--sessions", "80", "--tokens", "3", "--repeat", "2", "--workers", "1"]
    command += ["--database", database, "--postgresql", server]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=project_env, capture_output=True, text=True, timeout=300
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    section = out.split(f"\n{database}: the cost of one request")[1].split("targets")[0]
    for label in PAGES + FIXED:
        row = re.search(
            rf"^{re.escape(label)}\s+[\d.]+ -> +[\d.]+\s+[\d.]+\s+[\d.]+ -> +[\d.]+"
            r"\s+([\d.]+) -> +([\d.]+)\s+\d+ -> +\d+\s+([\d.]+) -> +([\d.]+)$",
            section,
            re.M,
        )
        assert row, f"no row for {label}:\n{section}"
        small_sql, large_sql, small_trips, large_trips = row.groups()
        if label in PAGES:  # the same statements whatever the number of users
            assert small_sql == large_sql, row.group(0)
        if label in PAGES[:5]:  # one round trip: the session's GET
            assert small_trips == large_trips == "1.0", row.group(0)
    for label in FIXED:
        assert re.search(rf"\[met\] {re.escape(label)}: no more Redis round trips", out), out
