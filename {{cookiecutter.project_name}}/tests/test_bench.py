"""The benchmark runs end to end and reports what issue-level targets it can check exactly.

Throughput is not asserted (that is the benchmark's job, on a quiet machine); the Redis
command counts, the SQL statement counts and the login's outbound calls are exact, so they
are. The app runs on SQLite, and on PostgreSQL too when a server is reachable (conftest's
PostgreSQL server, as the PostgreSQL tests use it). What valgrind counts per request is
exact too, so the session read's 0.95 of the floor is asserted on those counts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import FACTS, PROJECT_ROOT, PROVIDERS, postgresql_server_url


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is missing: sudo apt-get install -y wrk"
)
def test_a_short_benchmark_reports_every_section_and_meets_the_exact_targets(project_env) -> None:
    command = [sys.executable, "-m", "bench.run", "--duration", "1", "--rounds", "1"]
    command += ["--warmup", "0", "--connections", "4", "--threads", "1", "--workers", "1"]
    command += ["--postgresql", postgresql_server_url()]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=project_env, capture_output=True, text=True, timeout=180
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    skipped = "the app runs on SQLite only (PostgreSQL SKIPPED)" in out
    if os.environ.get("REQUIRE_POSTGRESQL") == "1":
        assert not skipped, out
    databases = ["sqlite"] if skipped else ["sqlite", "postgresql"]
    # Each row: req/s, SQL statements per request (none: the references have no database)
    # and errors.
    rows = {"ref: bare Flask, no session": "-", "ref: one Redis GET (floor)": "-"}
    rows |= {"ref: Flask cookie session": "-", "app: /login, anonymous": r"0\.00"}
    for db in databases:
        rows |= {f"app {db}: /api/me, session": r"0\.00", f"app {db}: /api/me, bearer": r"1\.0\d"}
    for label, sql in rows.items():
        row = re.search(rf"^{re.escape(label)}\s+(\d+)\s.*\s(\S+)\s+(\d+)\s+\S+%$", out, re.M)
        assert row, f"no row for {label}:\n{out}"
        assert int(row.group(1)) > 0 and int(row.group(3)) == 0, row.group(0)
        assert re.fullmatch(sql, row.group(2)), row.group(0)
    for db in databases:
        session, bearer = f"app {db}: /api/me, session", f"app {db}: /api/me, bearer"
        # Redis: one GET per session read and nothing else; SQL: no statement at all there,
        # one SELECT per bearer request (its usage is written once a minute at most).
        # (1.0x: the requests wrk left in flight, which the [met] checks below allow for; and
        # perhaps redis-py's health-check PING of a connection idle for 30 s: 0.00)
        assert re.search(rf"^  {re.escape(session)}\s+get 1\.0\d(, ping 0\.00)?$", out, re.M), out
        assert re.search(rf"^  {re.escape(session)}\s+none$", out, re.M), out
        assert re.search(rf"^  {re.escape(bearer)}\s+select 1\.0\d$", out, re.M), out
        for target in (
            "exactly 1 Redis command (GET) per session read",
            "no Redis write on a session read",
            "no SQL query on a session read",
            "at most 1 SQL query per bearer request",
            "at most 1 Redis command per bearer request",
        ):
            assert f"[met] {db}: {target}:" in out, out
        assert f"{db}: session /api/me >= 0.95 x floor req/s" in out
        statements = re.search(rf"\] {db}: no SQL query on a session read: (\d+) statements", out)
        assert statements and statements.group(1) == "0", out
        per_bearer = re.search(rf"\] {db}: at most 1 SQL query per bearer request: ([\d.]+)", out)
        assert per_bearer and 0.99 <= float(per_bearer.group(1)) <= 1.1, out
    if not skipped:  # PostgreSQL's own count: none for a session read, one for a bearer one
        own_count = r"^  app postgresql: /api/me, session\s+0\.00 \(0 in \d+ requests\)$"
        assert re.search(own_count, out, re.M), out
        assert "[met] postgresql: no PostgreSQL transaction on a session read" in out, out
        # The pool checks a connection without a round trip of its own (no pre-ping SELECT 1).
        assert "[met] postgresql: at most 1 PostgreSQL transaction per bearer request" in out, out
        assert "pool_pre_ping" not in out, out
    assert re.search(r"Capacity, from the .* row: one Redis core serves about [\d,]+", out)
    # Each provider's login: the token call and the profile reads it needs (the user, and
    # whether its email is verified, say), nothing per login that a cache could have saved
    # (discovery and keys only on a worker's first login).
    for provider in PROVIDERS:
        second = re.search(rf"^  sqlite\s+{provider}\s+second (\d+) calls \(([^)]*)\)", out, re.M)
        assert second, out
        calls, most = int(second.group(1)), FACTS[provider].login_calls
        assert 1 <= calls <= most and "token 1" in second.group(2), second.group(0)
        assert "discovery" not in second.group(2) and "certs" not in second.group(2)


@pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="valgrind is missing: sudo apt-get install -y valgrind"
)
def test_valgrinds_count_keeps_a_session_read_within_the_floor_target(project_env) -> None:
    # Counted instructions, cache misses and mispredictions depend neither on the machine nor
    # on its load, so the 0.95 target is asserted here, on the app as create_app() builds it.
    command = [sys.executable, "-m", "bench.instructions", "--requests", "50", "--warmup", "10"]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=project_env, capture_output=True, text=True, timeout=600
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    labels = ("ref: bare Flask, no session", "ref: one Redis GET (floor)")
    for label in (*labels, "ref: Flask cookie session", "app: /api/me, session"):
        row = re.search("^" + re.escape(label) + r"((?:\s+[\d,]+){5})\s+[\d.]+$", out, re.M)
        assert row, f"no row for {label}:\n{out}"
        instructions = int(row.group(1).split()[0].replace(",", ""))
        assert instructions > 100_000, row.group(0)  # a whole request was counted
    met = r"^  \[met\] session /api/me >= 0\.95 x floor in estimated cycles: (0\.9[5-9]|1\.)"
    assert re.search(met, out, re.M), out
