"""Which Flask CLI command this process runs: two commands must start where the app won't.

`auth doctor` loads the settings leniently (it explains a configuration the app refuses),
and `db …` skips the schema check (it is how a schema behind the code gets fixed). Only the
`flask` command (or `python -m flask`) qualifies: gunicorn, which accepts stray arguments,
must never start that way.
"""

from __future__ import annotations

import sys
from pathlib import Path


def flask_cli_args(argv: list[str] | None = None) -> list[str] | None:
    """The arguments of the Flask CLI, or None when this process is not the Flask CLI."""
    argv = sys.argv if argv is None else argv
    program = Path(argv[0]) if argv else Path()
    if program.name != "flask" and program.parent.name != "flask":
        return None
    return argv[1:]


def doctor_requested(argv: list[str] | None = None) -> bool:
    """Is this the Flask CLI running `auth doctor`? Then settings load leniently."""
    args = flask_cli_args(argv) or []
    return any(a == "auth" and args[i + 1 : i + 2] == ["doctor"] for i, a in enumerate(args))


def db_command_requested(argv: list[str] | None = None) -> bool:
    """Is this the Flask CLI running `db …`? Then the schema may be behind: it is the fix."""
    return "db" in (flask_cli_args(argv) or [])
