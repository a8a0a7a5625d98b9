"""The benchmark runs end to end and reports what issue-level targets it can check exactly.

Throughput is not asserted (that is the benchmark's job, on a quiet machine); the Redis
command counts and the login's outbound calls are exact, so they are.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

from {{ cookiecutter.package_name }}.providers import PROVIDER_CLASSES

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is missing: sudo apt-get install -y wrk"
)


def test_a_short_benchmark_reports_every_section_and_meets_the_exact_targets(project_env) -> None:
    command = [sys.executable, "-m", "bench.run", "--duration", "1", "--rounds", "1"]
    command += ["--warmup", "0", "--connections", "4", "--threads", "1", "--workers", "1"]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=project_env, capture_output=True, text=True, timeout=180
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for label in (
        "ref: bare Flask, no session",
        "ref: one Redis GET (floor)",
        "ref: Flask cookie session",
        "app: /api/me, session",
        "app: /api/me, bearer token",
        "app: /login, anonymous",
    ):
        row = re.search(rf"^{re.escape(label)}\s+(\d+)\s.*\s(\d+)\s+\S+%$", out, re.M)
        assert row, f"no row for {label}:\n{out}"
        assert int(row.group(1)) > 0 and int(row.group(2)) == 0, row.group(0)  # req/s, errors
    assert re.search(r"^  app: /api/me, session\s+get 1\.00$", out, re.M), out
    for target in (
        "exactly 1 Redis command per session read",
        "no Redis write on a session read",
        "at most 2 Redis commands per bearer request",
    ):
        assert f"[met] {target}" in out, out
    assert "session /api/me >= 0.90 x floor req/s" in out
    assert re.search(r"Capacity, from the session row: one Redis core serves about [\d,]+", out)
    # Each provider's login: the token call and at most the user API, nothing per login
    # that a cache could have saved (discovery and keys only on a worker's first login).
    for provider in PROVIDER_CLASSES:
        second = re.search(rf"^  {provider}\s+second (\d+) calls \(([^)]*)\)", out, re.M)
        assert second, out
        assert 1 <= int(second.group(1)) <= 2 and "token 1" in second.group(2), second.group(0)
        assert "discovery" not in second.group(2) and "certs" not in second.group(2)
