"""`python -m mock_providers`: run the mock providers in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from werkzeug.serving import make_server

from .server import PathOnlyRequestHandler, app_env, create_app
from .settings import MockSettings


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops the server the same clean way Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mock_providers", description="Local mock sign-in providers."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--app-url", default="http://127.0.0.1:5000", help="the app whose callbacks are registered"
    )
    parser.add_argument(
        "--public-url", default="", help="the mock's own base URL if not http://HOST:PORT"
    )
    parser.add_argument(
        "--interactive", action="store_true", help="show a consent page instead of approving"
    )
    args = parser.parse_args(argv)

    settings = MockSettings(app_url=args.app_url, interactive=args.interactive)
    app = create_app(settings)
    try:
        server = make_server(
            args.host, args.port, app, threaded=True, request_handler=PathOnlyRequestHandler
        )
    except (OSError, SystemExit) as exc:  # werkzeug exits when the port is taken
        print(f"Cannot listen on {args.host}:{args.port} ({exc}).", file=sys.stderr)
        return 1
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host  # noqa: S104
    settings.public_url = args.public_url.rstrip("/") or f"http://{shown_host}:{server.server_port}"

    print(f"Mock providers listening on {settings.public_url}")
    print(f"Consent page: {'on' if settings.interactive else 'off (auto-approve)'}")
    print("Point the app at them with:")
    for key, value in app_env(settings.public_url, settings).items():
        print(f"  {key}={value}")
    print("Press Ctrl-C to stop.", flush=True)

    signal.signal(signal.SIGTERM, interrupt)
    try:
        server.serve_forever()  # werkzeug's returns quietly on KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("\nStopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
