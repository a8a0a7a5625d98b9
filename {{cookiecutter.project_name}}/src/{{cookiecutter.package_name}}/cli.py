"""`flask --app {{ cookiecutter.package_name }} tokens ...`: operator commands."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from .extensions import token_service

tokens_cli = AppGroup("tokens", help="Manage stored provider tokens.")


@tokens_cli.command("reencrypt")
def reencrypt() -> None:
    """Re-encrypt every stored token with the first TOKEN_ENCRYPTION_KEY.

    Put the new key first, keep the old ones after it, run this, then drop the old keys.
    """
    rewritten, unreadable = token_service().vault.reencrypt_all()
    click.echo(f"re-encrypted {rewritten} token(s) with the first key")
    if unreadable:
        click.echo(
            f"{unreadable} record(s) could not be decrypted with any key: their users will be "
            "asked to connect again",
            err=True,
        )


def register_cli(app: Flask) -> None:
    app.cli.add_command(tokens_cli)
