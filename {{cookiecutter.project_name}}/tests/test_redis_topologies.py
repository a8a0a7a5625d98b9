"""Many instances: two apps on one Redis, Redis Sentinel (with a failover) and Redis Cluster.

Every server here is a real `redis-server` child process on a free loopback port.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import (
    FACTS,
    PROVIDERS,
    REFRESHABLE,
    Browser,
    RunningApp,
    free_port,
    rows,
    start_redis_server,
    wait_for,
)
from limits import parse

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.session_index import SessionIndex

PROVIDER = PROVIDERS[0]
REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"


def ephemeral_port_floor() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux; else the default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_cluster_port(taken: list[int]) -> int:
    """A free port whose cluster-bus port (port + 10000) is free too, both below the
    ephemeral range, so no outgoing connection can take either before the node binds."""
    highest = ephemeral_port_floor() - 10001
    for _ in range(200):
        port = random.randint(12000, highest)
        if any(abs(port - other) in (0, 10000) for other in taken):
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class Servers:
    """redis-server processes started for one test, all stopped at its end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []

    def start(self, port: int, *args: str) -> subprocess.Popen:
        directory = self.workdir / str(port)
        directory.mkdir()
        process = start_redis_server(port, directory, *args)
        self.processes.append(process)
        return process

    def sentinel(self, port: int, master_port: int) -> subprocess.Popen:
        config = self.workdir / f"sentinel-{port}.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 3000\n"
        )
        process = subprocess.Popen(
            [REDIS_SERVER, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        wait_for(lambda: redis.Redis(port=port).ping(), what="redis-sentinel")
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)


@pytest.fixture()
def servers(tmp_path: Path) -> Iterator[Servers]:
    running = Servers(tmp_path)
    yield running
    running.stop()


def serve(app_env: dict[str, str], port: int, **overrides: str) -> RunningApp:
    env = {**app_env, **overrides}
    return RunningApp(f"http://127.0.0.1:{port}", port, create_app(env)).start()


def sign_in_and_use(app_url: str) -> Browser:
    browser = Browser(app_url)
    assert browser.login(PROVIDER).status_code == 200
    assert browser.me().status_code == 200
    return browser


def callback_counter(app: RunningApp) -> str:
    """The rate limiter's counter of this machine's callbacks (ratelimits.py) in Redis."""
    settings = app.app.config["APP_SETTINGS"]
    key = parse(settings.login_rate_limit).key_for("ip:127.0.0.1", "auth.callback")
    return f"{settings.redis_key_prefix}ratelimit:{key}"


def test_two_instances_share_sessions_through_redis(released_port, app_env, mock) -> None:
    first = serve(app_env, released_port)  # the port the mock knows as the callback
    second = serve(app_env, free_port())
    try:
        browser = sign_in_and_use(first.url)
        other = Browser(second.url)
        other.http.cookies = browser.http.cookies
        me = other.me()
        assert me.status_code == 200
        assert me.json()["id"] == browser.me().json()["id"]
    finally:
        first.stop()
        second.stop()


@pytest.mark.skipif(not REFRESHABLE, reason="no provider of this bake issues refresh tokens")
def test_a_refresh_on_one_instance_is_seen_by_the_other(released_port, app_env, mock) -> None:
    name = REFRESHABLE[0]
    refresh, profile = FACTS[name].refresh, f"/api/providers/{name}/profile"

    def token_calls() -> int:
        return mock.control.requests()[name][FACTS[name].token_endpoint]

    first = serve(app_env, released_port)
    second = serve(app_env, free_port())
    try:
        mock.control.switch(name, **refresh.expiring)  # due for refresh at once
        browser = Browser(first.url)
        browser.login(name)
        mock.control.switch(name, **refresh.long_lived)
        signed_in = token_calls()
        assert browser.get(profile).status_code == 200
        refreshes = token_calls()
        assert refreshes == signed_in + 1
        other = Browser(second.url)
        other.http.cookies = browser.http.cookies
        assert other.get(profile).status_code == 200
        assert token_calls() == refreshes  # no second refresh
    finally:
        first.stop()
        second.stop()


def test_redis_sentinel_with_failover(servers, released_port, app_env, mock) -> None:
    master, replica, sentinel = free_port(), free_port(), free_port()
    servers.start(master)
    servers.start(replica, "--replicaof", "127.0.0.1", str(master))
    servers.sentinel(sentinel, master)
    wait_for(
        lambda: redis.Redis(port=replica).info("replication")["master_link_status"] == "up",
        what="replication",
    )
    app = serve(app_env, released_port, REDIS_URL=f"redis+sentinel://127.0.0.1:{sentinel}/mymaster")
    try:
        browser = sign_in_and_use(app.url)
        assert redis.Redis(port=master).get(callback_counter(app)) == b"1"  # the rate limiter's
        # Let the replica catch up, then fail the master over to it.
        wait_for(lambda: redis.Redis(port=master).info("replication")["connected_slaves"] == 1)
        time.sleep(0.5)
        redis.Redis(port=sentinel).execute_command("SENTINEL", "FAILOVER", "mymaster")
        wait_for(
            lambda: (
                redis.Redis(port=sentinel).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"
                )[1]
                == str(replica).encode()
            ),
            timeout=15,
            what="failover",
        )
        wait_for(lambda: browser.me().status_code == 200, timeout=15, what="session after failover")
        assert redis.Redis(port=replica).info("replication")["role"] == "master"
        # Writes go to the new master: a new login works too.
        sign_in_and_use(app.url)
    finally:
        app.stop()


def test_redis_cluster(servers, released_port, app_env, mock, database) -> None:
    ports: list[int] = []
    for _ in range(3):
        ports.append(free_cluster_port(ports))
    for port in ports:
        servers.start(
            port,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            f"nodes-{port}.conf",
            "--cluster-node-timeout",
            "2000",
        )
    subprocess.run(
        [
            REDIS_CLI,
            "--cluster",
            "create",
            *[f"127.0.0.1:{p}" for p in ports],
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    wait_for(
        lambda: redis.Redis(port=ports[0]).cluster("info")["cluster_state"] == "ok",
        timeout=20,
        what="cluster",
    )
    nodes = ",".join(f"127.0.0.1:{p}" for p in ports)
    app = serve(app_env, released_port, REDIS_URL=f"redis+cluster://{nodes}")
    try:
        browser = sign_in_and_use(app.url)
        cluster = redis.RedisCluster(host="127.0.0.1", port=ports[0])
        keys = list(cluster.scan_iter(match="*", count=1000))
        user_id = browser.me().json()["id"]
        assert any(b":session:" in k for k in keys)
        assert any(k.endswith(f":user_sessions:{user_id}".encode()) for k in keys)  # the index
        assert cluster.get(callback_counter(app)) == b"1"  # the rate limiter counts there too
        # The account itself is in the database, not in Redis.
        assert [tuple(r) for r in rows(database, "SELECT id FROM users")] == [(user_id,)]
        assert not [k for k in keys if user_id.encode() in k and b"user_sessions" not in k]
        # The session list's last-seen update (a one-key script) runs on the cluster too.
        index = SessionIndex(cluster, "probe:", 60)
        index.add("someone", "0123456789abcdef", "probe:session:x")
        index.touch("someone", "0123456789abcdef")
        assert [s["id"] for s in index.list("someone")] == []  # its record does not exist
        index.add("someone", "0123456789abcdef", "probe:session:x")
        index.end_all("someone")
        index.touch("someone", "0123456789abcdef")
        assert not cluster.exists("probe:user_sessions:someone")
        # What acts on all of a person's sessions sends one pipeline over every slot.
        capped = SessionIndex(cluster, "probe:", 60, max_sessions=3)
        for n in range(6):
            cluster.set(f"probe:session:{n}", b"record", ex=60)
            ended = capped.add("many", f"{n:016x}", f"probe:session:{n}")
        assert len(ended) == 1 and cluster.hlen("probe:user_sessions:many") == 3
        assert capped.end_all("many") == 3
        assert not any(cluster.exists(f"probe:session:{n}") for n in range(6))
        interface = app.app.session_interface
        records = [f"probe:session:copy{n}" for n in range(5)]
        for key in records:
            cluster.set(key, interface._seal(key, {"n": 1}), ex=60)
        assert interface.rewrite([*records, "probe:session:gone"], {"n": 2}) == 5
        assert all(interface._retrieve_session_data(key)["n"] == 2 for key in records)
        cluster.delete(*records)
        # Sessions live on the cluster: logout deletes the record there.
        page = browser.get("/").text
        csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
        browser.http.post(f"{app.url}/logout", data={"csrf_token": csrf})
        assert browser.me().status_code == 401
        assert not [k for k in cluster.scan_iter(match="*:session:*")]
    finally:
        app.stop()
