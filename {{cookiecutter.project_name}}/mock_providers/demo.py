"""`python -m mock_providers.demo` (`make demo`): the app signed in through local mocks.

Starts the mock providers (with the consent page) in a thread and the app as a subprocess
pointed at them, then waits for Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import requests
from dotenv import dotenv_values

from .server import RunningMock, start
from .settings import MockSettings

PACKAGE = "{{ cookiecutter.package_name }}"
STARTUP_TIMEOUT = 30.0


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM shuts the demo down the same way Ctrl-C does."""
    raise KeyboardInterrupt


def app_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flask",
        "--app",
        PACKAGE,
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-reload",
    ]


def app_environment(app_url: str, mock: RunningMock) -> dict[str, str]:
    env = {**os.environ, "APP_ENV": "development", "PUBLIC_URL": app_url, **mock.app_env()}
    if not env.get("SECRET_KEY") and not dotenv_values(Path.cwd() / ".env").get("SECRET_KEY"):
        # A fresh checkout without .env should still demo; sessions just end with the demo.
        print("No SECRET_KEY in the environment or .env: using a throwaway one for this demo.")
        env["SECRET_KEY"] = secrets.token_urlsafe(48)
    # Works from a fresh checkout too: the package is importable without `pip install -e .`.
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def wait_until_up(url: str, app: subprocess.Popen[bytes]) -> bool:
    """True once the app answers HTTP at all; False if it exits or never answers."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if app.poll() is not None:
            return False
        try:
            requests.get(f"{url}/healthz", timeout=1)
            return True
        except requests.RequestException:
            time.sleep(0.2)
    return False


def stop_app(app: subprocess.Popen[bytes]) -> None:
    if app.poll() is None:
        app.terminate()
        try:
            app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


def banner(app_url: str, mock: RunningMock) -> str:
    titles = ", ".join(m.TITLE for m in mock.app.extensions["mock_providers"].providers.values())
    line = "=" * 68
    return (
        f"\n{line}\n"
        f"  Demo running at   {app_url}\n"
        f"  Sign-in providers ({titles}) are LOCAL MOCKS at {mock.url}:\n"
        "  no real accounts are used; pick a test user on the consent page.\n"
        "  Press Ctrl-C to stop.\n"
        f"{line}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mock_providers.demo", description=__doc__)
    parser.add_argument("--port", type=int, default=5000, help="port of the app")
    parser.add_argument("--mock-port", type=int, default=9000, help="port of the mock providers")
    args = parser.parse_args(argv)

    wanted = [(args.port, "the app", "--port"), (args.mock_port, "mock providers", "--mock-port")]
    for port, what, flag in wanted:
        if not port_free(port):
            message = f"Port {port} ({what}) is busy: stop what uses it or pass {flag} N."
            print(message, file=sys.stderr)
            return 1

    app_url = f"http://127.0.0.1:{args.port}"
    signal.signal(signal.SIGTERM, interrupt)
    mock = start(MockSettings(app_url=app_url, interactive=True), port=args.mock_port)
    app: subprocess.Popen[bytes] | None = None
    try:
        app = subprocess.Popen(app_command(args.port), env=app_environment(app_url, mock))  # noqa: S603
        if not wait_until_up(app_url, app):
            print(f"The app did not start on {app_url}; see its output above.", file=sys.stderr)
            return 1
        print(banner(app_url, mock), flush=True)
        code = app.wait()
        if code != 0:
            print(f"The app stopped (exit status {code}).", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        print("\nStopping the demo...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if app is not None:
            stop_app(app)
        mock.stop()


if __name__ == "__main__":
    sys.exit(main())
