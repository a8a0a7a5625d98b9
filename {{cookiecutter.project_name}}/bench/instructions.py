"""`python -m bench.instructions`: what one session read costs the processor, by valgrind's count.

`bench.run` measures throughput, and its ratio to the one-GET floor moves with the processor
and with whatever else runs: the same code has measured 0.81 to 1.03 of the floor on
different 2-vCPU VMs. Valgrind's callgrind counts the instructions a request executes and,
in a simulation of fixed caches and a branch predictor, its cache misses and mispredicted
branches: the same counts on any x86-64 machine with the same software, however busy it is.

After a real login through the mock providers (the app served by gunicorn, on SQLite: a
session read sends no SQL), each target runs in a process of its own under callgrind: the
app as `create_app()` builds it, and the reference apps. The process builds its app with
callgrind's instrumentation off (start-up would take minutes with it on), then calls the
app's WSGI callable as a server would, with a fresh environ per request: WARMUP requests
with the instrumentation on (the simulated caches warm up), then REQUESTS counted ones,
between callgrind's `zero` and `dump` (sent with `callgrind_control`). No server's own work
is counted, so the ratios are stricter than bench.run's. See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import Path

from bench.run import (
    APP_COOKIE,
    FLOOR_TARGET,
    PACKAGE,
    REDIS_MISSING,
    Children,
    RedisStats,
    SqlStats,
    app_env,
    free_port,
    login,
    preferred_provider,
    reference_env,
    start_gunicorn,
    start_redis,
    wait_up,
    with_children,
)

VALGRIND_MISSING = "valgrind is missing: sudo apt-get install -y valgrind"
CALLGRIND_CONTROL = "callgrind_control"  # valgrind's, beside it
BENCH_COOKIE = "BENCH_COOKIE"  # the child's Cookie header
# Simulated caches of a fixed size rather than the host's, so that every machine counts the
# same misses: 32 KiB L1 caches (8-way, 64-byte lines) and an 8 MiB last level.
CACHES = ("--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64")
# Rough cycles per event, from valgrind's manual: an L1 miss costs about 10 cycles, a
# last-level miss up to 200, a mispredicted branch 10 to 30.
L1_MISS_CYCLES, LL_MISS_CYCLES, MISPREDICT_CYCLES = 10, 100, 15
START_SECONDS = 600  # the longest a step under valgrind may take
FLOOR = "ref: one Redis GET (floor)"
APP = "app: /api/me, session"


@dataclass(frozen=True)
class Counts:
    instructions: float
    l1_misses: float  # instruction and data
    ll_misses: float
    mispredicts: float  # conditional and indirect branches

    @property
    def cycles(self) -> float:
        """An estimate: instructions plus what the misses and mispredictions cost."""
        return (
            self.instructions
            + L1_MISS_CYCLES * self.l1_misses
            + LL_MISS_CYCLES * self.ll_misses
            + MISPREDICT_CYCLES * self.mispredicts
        )

    @classmethod
    def read(cls, path: Path) -> Counts:
        """The totals of a callgrind output file (its `events:` and `summary:` lines)."""
        fields: dict[str, list[str]] = {}
        for line in path.read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("events", "summary"):
                fields[name] = rest.split()
        if len(fields) != 2:
            raise SystemExit(f"{path}: no totals (did the worker exit normally?)")
        e = dict(zip(fields["events"], map(int, fields["summary"]), strict=True))
        return cls(
            e["Ir"],
            e["I1mr"] + e["D1mr"] + e["D1mw"],
            e["ILmr"] + e["DLmr"] + e["DLmw"],
            e["Bcm"] + e["Bim"],
        )

    def per(self, requests: int) -> Counts:
        return Counts(*(value / requests for value in astuple(self)))


@dataclass(frozen=True)
class Target:
    label: str
    kind: str  # "app", or a reference app's kind
    env: dict[str, str]
    cookie: str  # the Cookie header (the references that need one get theirs themselves)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description="Count a session read's instructions and misses under valgrind, beside "
        "the reference apps (loopback only).",
    )
    parser.add_argument("--requests", type=int, default=200, help="requests counted (200)")
    parser.add_argument("--warmup", type=int, default=20, help="requests before them (20)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one target, under callgrind
    parser.add_argument(
        "--floor-only",
        action="store_true",
        help="of the reference apps, count only the floor (half the time)",
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 1:
        parser.error("--requests and --warmup must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child, args)
    valgrind = shutil.which("valgrind")
    redis_server = shutil.which("redis-server")
    if valgrind is None or redis_server is None:
        print(REDIS_MISSING if redis_server is None else VALGRIND_MISSING)
        return 1
    return with_children(
        "bench-instructions-",
        lambda children, tmp: count(args, valgrind, redis_server, children, tmp),
    )


def count(
    args: argparse.Namespace, valgrind: str, redis_server: str, children: Children, tmp: Path
) -> None:
    targets = sign_in_and_list_targets(redis_server, children, tmp)
    print(
        f"each target in a process under valgrind --tool=callgrind, called in-process: "
        f"{args.warmup} requests to warm up, then {args.requests} counted",
        flush=True,
    )
    if args.floor_only:
        targets = [t for t in targets if t.label in (FLOOR, APP)]
    with ThreadPoolExecutor(2) as pool:  # two at a time: each process counts only itself
        counts = pool.map(lambda target: counted_run(valgrind, target, args, tmp), targets)
        results = {target.label: c for target, c in zip(targets, counts, strict=True)}
    report(results, args)


def sign_in_and_list_targets(redis_server: str, children: Children, tmp: Path) -> list[Target]:
    """Sign in to the app (served natively, as in bench.run); the targets to count."""
    mock_providers = importlib.import_module("mock_providers")
    providers = list(importlib.import_module(f"{PACKAGE}.providers").PROVIDER_CLASSES)
    if not providers:
        raise SystemExit("no provider was baked into this project")
    redis_url = start_redis(children, redis_server, tmp)
    database = f"sqlite:///{tmp / 'bench.sqlite3'}"
    importlib.import_module(f"{PACKAGE}.database").upgrade_database(database)
    port = free_port()
    mock = mock_providers.start(mock_providers.MockSettings(app_url=f"http://127.0.0.1:{port}"))
    try:
        sql = SqlStats(tmp / "sql")
        # One hash seed for every process: the counts then repeat from run to run.
        env = {**app_env("sqlite", database, port, redis_url, sql, mock), "PYTHONHASHSEED": "0"}
        server = start_gunicorn(children, "app", f"{PACKAGE}:create_app()", port, env, 1, tmp)
        wait_up(server)
        signed_in = login(
            server.url, mock, preferred_provider(providers), RedisStats(redis_url), sql
        )
        me = signed_in.client.request("GET", "/api/me")
        if me.status_code != 200:
            raise SystemExit(f"/api/me with the session cookie: {me.status_code} {me.text}")
        server.process.terminate()
        server.process.wait(timeout=30)
    finally:
        mock.stop()
    references = {**reference_env(me, redis_url), "PYTHONHASHSEED": "0"}
    return [
        Target("ref: bare Flask, no session", "bare", references, ""),
        Target(FLOOR, "redis_get", references, ""),
        Target("ref: Flask cookie session", "cookie_session", references, ""),
        Target(APP, "app", env, f"{APP_COOKIE}={signed_in.client.cookie}"),
    ]


def counted_run(valgrind: str, target: Target, args: argparse.Namespace, tmp: Path) -> Counts:
    """Run `target` in a process under callgrind (`child`); its counts per request."""
    name = target.kind
    log = tmp / f"{name}.log"
    command = [
        valgrind,
        "--tool=callgrind",
        "--instr-atstart=no",
        "--cache-sim=yes",
        "--branch-sim=yes",
        *CACHES,
        f"--callgrind-out-file={tmp / name}.%p.callgrind",
        sys.executable,
        *("-m", "bench.instructions", "--child", target.kind),
        *("--requests", str(args.requests), "--warmup", str(args.warmup)),
    ]
    with log.open("w") as errors:
        # Our own command line (valgrind's absolute path), no shell.
        child = subprocess.Popen(  # noqa: S603
            command,
            env={**target.env, BENCH_COOKIE: target.cookie},
            cwd=tmp,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    assert child.stdin is not None and child.stdout is not None  # both are pipes
    try:
        for step in ("--instr=on", "--zero", "--dump"):  # after "ready", "warm", "counted"
            said = child.stdout.readline().strip()
            if not said or said.startswith("error"):
                tail = log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"{target.label} under valgrind: {said or 'exited'}\n{tail}")
            control(child.pid, step)
            child.stdin.write("go\n")
            child.stdin.flush()
        child.wait(timeout=START_SECONDS)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    dumps = list(tmp.glob(f"{name}.{child.pid}.callgrind.*"))  # the final one has no suffix
    if len(dumps) != 1:
        raise SystemExit(f"{target.label}: {len(dumps)} callgrind dumps (log: {log})")
    return Counts.read(dumps[0]).per(args.requests)


def control(pid: int, option: str) -> None:
    """A command to a running callgrind, over valgrind's gdbserver (`vgdb`)."""
    tool = shutil.which(CALLGRIND_CONTROL) or CALLGRIND_CONTROL
    done = subprocess.run(  # noqa: S603
        [tool, option, str(pid)], capture_output=True, text=True, timeout=START_SECONDS
    )
    if done.returncode != 0 or "OK" not in done.stdout:
        raise SystemExit(f"callgrind_control {option} {pid} failed: {done.stdout}{done.stderr}")


# --- the process under callgrind --------------------------------------------------------------


def child(kind: str, args: argparse.Namespace) -> int:
    """Build the app, then serve the counted requests one step at a time: the parent turns
    the instrumentation on, zeroes and dumps the counts between the steps."""
    if kind == "app":
        app = importlib.import_module(PACKAGE).create_app()
    else:
        app = importlib.import_module("bench.reference_apps").create_app(kind)
    cookie = os.environ[BENCH_COOKIE]
    if kind in ("redis_get", "cookie_session"):
        started = app.test_client().post("/bench/session")
        cookie = started.headers["Set-Cookie"].split(";", 1)[0]
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    def session_read() -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": "/api/me",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_COOKIE": cookie,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        body = app(environ, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()

    for said, requests_sent in (("ready", 0), ("warm", args.warmup), ("counted", args.requests)):
        for _ in range(requests_sent):
            session_read()
        failed = [status for status in statuses if status != "200 OK"]
        if failed:  # a 401 would be counted as a (much cheaper) session read
            print(f"error: /api/me answered {failed[0]} ({len(failed)} times)", flush=True)
            return 1
        print(said, flush=True)
        sys.stdin.readline()
    return 0


def report(results: dict[str, Counts], args: argparse.Namespace) -> None:
    floor, app = results[FLOOR], results[APP]
    print(f"\nPer request ({args.requests} requests counted):")
    header = ("instructions", "L1 misses", "LL misses", "mispredicts", "est. cycles", "vs floor")
    print(f"{'target':30s}" + "".join(f"{h:>14s}" for h in header))
    for label, c in results.items():
        values = (c.instructions, c.l1_misses, c.ll_misses, c.mispredicts, c.cycles)
        print(
            f"{label:30s}"
            + "".join(f"{v:14,.0f}" for v in values)
            + f"{floor.cycles / c.cycles:14.3f}"
        )
    ratio = floor.cycles / app.cycles
    status = "met" if ratio >= FLOOR_TARGET else "MISSED"
    print(
        "\nest. cycles = instructions + "
        f"{L1_MISS_CYCLES} x L1 misses + {LL_MISS_CYCLES} x LL misses + "
        f"{MISPREDICT_CYCLES} x mispredicts; vs floor = the floor's / the row's (higher is faster)"
    )
    print("\nTarget (not asserted here; tests/test_bench.py asserts it):")
    print(
        f"  [{status}] session /api/me >= {FLOOR_TARGET} x floor in estimated cycles: "
        f"{ratio:.3f} (in instructions alone: {floor.instructions / app.instructions:.3f})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
