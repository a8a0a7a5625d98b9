"""Operator commands: `flask --app {{ cookiecutter.package_name }} tokens|roles|users|audit|auth ...`.

They act on the app's own database (DATABASE_URL), the same in development and production.
`flask --app {{ cookiecutter.package_name }} db ...` (Flask-Migrate) manages the schema.
"""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .accounts import delete_account, refresh_sessions, sign_out_everywhere
from .doctor import run_doctor
from .extensions import audit_log, token_service, user_store
from .models import db
from .users import UserView

tokens_cli = AppGroup("tokens", help="Manage stored provider tokens.")


@tokens_cli.command("reencrypt")
def reencrypt() -> None:
    """Re-encrypt every stored token with the first TOKEN_ENCRYPTION_KEY.

    Put the new key first, keep the old ones after it, run this, then drop the old keys.
    It works in committed batches: if it is interrupted, run it again.
    """
    rewritten, unreadable = token_service().vault.reencrypt_all()
    click.echo(f"re-encrypted {rewritten} token(s) with the first key")
    if unreadable:
        click.echo(
            f"{unreadable} record(s) could not be decrypted with any key: their users will be "
            "asked to connect again",
            err=True,
        )


roles_cli = AppGroup("roles", help="Grant or revoke roles by hand.")


def _one_user(email_or_id: str) -> UserView:
    store = user_store()
    user = store.get(email_or_id)
    matches = [user] if user else store.find_by_email(email_or_id)
    if not matches:
        raise click.ClickException(f"no user with email or id {email_or_id!r}")
    if len(matches) > 1:
        ids = ", ".join(u.id for u in matches)
        raise click.ClickException(f"several users have {email_or_id!r}: use one of the ids {ids}")
    return matches[0]


def _change_role(email_or_id: str, role: str, granted: bool) -> UserView:
    user = _one_user(email_or_id)
    before = list(user.roles)
    user = user_store().set_granted_role(user, role, granted=granted)
    audit_log().record("roles_changed", user.id, before=before, after=user.roles, by="cli")
    db.session.commit()
    refresh_sessions(user)  # live sessions see the new roles at once
    click.echo(f"{user.id} ({user.email}): roles {', '.join(user.roles)}")
    lost = set(before) - set(user.roles)
    if lost & current_app.config["APP_SETTINGS"].security_roles:
        ended = sign_out_everywhere(user.id, reason="role removed")
        click.echo(f"signed out {ended} session(s): {', '.join(sorted(lost))} is security-relevant")
    return user


@roles_cli.command("grant")
@click.argument("email_or_id")
@click.argument("role")
def grant(email_or_id: str, role: str) -> None:
    """Give ROLE to the user with this email (or user id)."""
    _change_role(email_or_id, role, granted=True)


@roles_cli.command("revoke")
@click.argument("email_or_id")
@click.argument("role")
def revoke(email_or_id: str, role: str) -> None:
    """Take ROLE away from the user with this email (or user id)."""
    user = _change_role(email_or_id, role, granted=False)
    if role in user.roles:
        click.echo(f"{role} comes from ADMIN_EMAILS: remove the address there", err=True)


users_cli = AppGroup("users", help="Manage user accounts.")


@users_cli.command("delete")
@click.argument("email_or_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_user(email_or_id: str, yes: bool) -> None:
    """Delete a user: revoke provider grants; delete tokens, identities, API tokens, sessions."""
    user = _one_user(email_or_id)
    if not yes:
        click.confirm(f"Delete {user.id} ({user.email}) and all their data?", abort=True)
    delete_account(user, by="cli")
    click.echo(f"deleted {user.id}")


audit_cli = AppGroup("audit", help="Security events.")


@audit_cli.command("prune")
def prune_audit() -> None:
    """Delete security events older than AUDIT_RETENTION_DAYS (the app also does it hourly)."""
    total = 0
    while deleted := audit_log().prune():
        db.session.commit()
        total += deleted
    click.echo(f"deleted {total} event(s) older than the retention period")


auth_cli = AppGroup("auth", help="Diagnose the sign-in configuration.")


@auth_cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def doctor(as_json: bool) -> None:
    """Check every provider, Redis and the settings; exit 1 when something is wrong."""
    sys.exit(run_doctor(current_app._get_current_object(), as_json))


def register_cli(app: Flask) -> None:
    app.cli.add_command(tokens_cli)
    app.cli.add_command(roles_cli)
    app.cli.add_command(auth_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(audit_cli)
