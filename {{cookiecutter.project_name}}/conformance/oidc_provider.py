"""npm's `oidc-provider` as a child process, for tests/test_sso_conformance.py.

`node_or_skip` says plainly when Node.js is missing (a failure under REQUIRE_NODE=1, as in
CI); `install` runs `npm install` here once per run (node_modules/ is git-ignored, npm's own
cache makes it quick); `start` runs provider.mjs with one of its settings and waits for
its ready line. `RunningProvider` looks into the provider's own state: the tokens and
grants it holds, what happened, and RFC 7662 introspection as the client.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests

HERE = Path(__file__).resolve().parent
NODE_NEEDED = "Node.js 20+ and npm are needed for the OpenID Connect conformance tests"
NODE_MAJOR = 20
STARTUP_TIMEOUT = 30.0
READY = "oidc-provider ready at "  # provider.mjs's line once it listens


def node_or_skip() -> None:
    """Skip without Node.js 20+ and npm; fail instead where REQUIRE_NODE=1 (CI)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    problem = None
    if node is None or npm is None:
        problem = f"{NODE_NEEDED} (not found on PATH)"
    else:
        version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
        found = re.match(r"v(\d+)\.", version)
        if not found or int(found.group(1)) < NODE_MAJOR:
            problem = f"{NODE_NEEDED} (found {version.strip() or 'an unknown version'})"
    if problem is None:
        return
    if os.environ.get("REQUIRE_NODE") == "1":
        pytest.fail(f"{problem}: REQUIRE_NODE=1 forbids skipping", pytrace=False)
    pytest.skip(problem)


def install() -> None:
    """`npm install` of package.json's oidc-provider (its range is the pin)."""
    with (HERE / "package.json").open() as lock:  # pytest-xdist workers take turns
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            [
                shutil.which("npm") or "npm",
                "install",
                "--no-package-lock",  # the range in package.json is the pin
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
    if result.returncode != 0:
        pytest.fail(f"npm install in {HERE} failed:\n{result.stdout}{result.stderr}")


@dataclass
class RunningProvider:
    """One provider.mjs process: its issuer, and a look at its own state."""

    settings: str
    issuer: str
    client_id: str
    client_secret: str
    process: subprocess.Popen[str]

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"

    def discovery(self) -> dict[str, Any]:
        return self.get("/.well-known/openid-configuration")

    def get(self, path: str) -> Any:
        response = requests.get(self.url(path), timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Forget every token, grant, session and event (clients and keys stay)."""
        requests.post(self.url("/__conformance/reset"), timeout=10).raise_for_status()

    def entries(self, model: str | None = None) -> list[dict[str, Any]]:
        """What the provider stores: {model, id, grant_id, account_id, client_id, scope}."""
        found = self.get("/__conformance/state")["entries"]
        return [e for e in found if model is None or e["model"] == model]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """{event, client_id, grant_type, ...} in order: grant.success is a token response."""
        return [e for e in self.get("/__conformance/events") if name in (None, e["event"])]

    def calls(self, path: str) -> int:
        """Requests to one of its endpoints, e.g. calls("/me") for userinfo."""
        return int(self.get("/__conformance/calls").get(path, 0))

    def refreshes(self) -> int:
        """Token responses to a refresh_token grant."""
        return sum(e["grant_type"] == "refresh_token" for e in self.events("grant.success"))

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662, authenticated as the client: is the token active at the provider?"""
        response = requests.post(
            self.discovery()["introspection_endpoint"],
            data={"token": token},
            auth=(self.client_id, self.client_secret),
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def start(
    settings: str,
    port: int,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    post_logout_redirect_uri: str,
) -> Iterator[RunningProvider]:
    """provider.mjs with `settings`, on 127.0.0.1:`port`, until the block ends."""
    process = subprocess.Popen(
        [
            shutil.which("node") or "node",
            str(HERE / "provider.mjs"),
            f"--port={port}",
            f"--settings={settings}",
            f"--client-id={client_id}",
            f"--client-secret={client_secret}",
            f"--redirect-uri={redirect_uri}",
            f"--post-logout-redirect-uri={post_logout_redirect_uri}",
        ],
        cwd=HERE,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    answered = threading.Event()  # the ready line, or the end of the output (it died)
    output: list[str] = []

    def read() -> None:  # keeps draining, so the pipe never fills up
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if line.startswith(READY):
                answered.set()
        answered.set()

    threading.Thread(target=read, daemon=True).start()
    running = RunningProvider(
        settings, f"http://127.0.0.1:{port}", client_id, client_secret, process
    )
    try:
        answered.wait(STARTUP_TIMEOUT)
        if not any(line.startswith(READY) for line in output):
            pytest.fail(f"provider.mjs ({settings}) did not start:\n{''.join(output)}")
        yield running
    finally:
        running.stop()


class Form(HTMLParser):
    """The first form of a page: its action and its fields' names and values."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.done = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if self.done:
            return
        if tag == "form" and self.action is None:
            self.action = values.get("action") or ""
        elif tag in ("input", "button") and self.action is not None and values.get("name"):
            self.fields[values["name"] or ""] = values.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.action is not None:
            self.done = True
