"""Operator commands: `flask --app {{ cookiecutter.package_name }} tokens|roles|users|audit|auth ...`.

They act on the app's own database (DATABASE_URL), the same in development and production.
`flask --app {{ cookiecutter.package_name }} db ...` (Flask-Migrate) manages the schema.
"""

from __future__ import annotations

import sys
from datetime import datetime

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .accounts import delete_account, refresh_sessions, sign_out_everywhere
from .doctor import run_doctor
from .extensions import audit_log, token_service, user_store
from .models import db
from .users import UserView, known_roles

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


def _identity_line(identity: dict) -> str:
    verified = "verified" if identity.get("email_verified") else "NOT verified"
    return f"{identity['provider']} {identity.get('email') or '(no email)'} ({verified})"


def _one_user(email_or_id: str) -> UserView:
    """The user with this id, or the one user whose provider VERIFIED this email.

    An unverified address proves nothing (anyone can type one at some providers), so it
    never selects a user: it is shown, with the id to use if that user is really meant.
    Who was matched, and how, is printed before anything is done.
    """
    store = user_store()
    user = store.get(email_or_id)
    if user is not None:
        click.echo(f"matched user {user.id} ({user.name or 'no name'}) by id; identities:")
        for identity in user.identities:
            click.echo(f"  {_identity_line(identity)}")
        return user
    email = email_or_id.strip().lower()
    verified: dict[str, UserView] = {}
    ignored = False
    for candidate in store.find_by_email(email):
        for identity in candidate.identities:
            if (identity.get("email") or "").lower() != email:
                continue
            trusted = bool(identity.get("email_verified"))
            ignored |= not trusted
            label = "matched" if trusted else "ignored"
            click.echo(f"{label}: user {candidate.id} by {_identity_line(identity)}")
            if trusted:
                verified[candidate.id] = candidate
    if not verified:
        hint = " (the matches above are unverified: pass a user id to act on one)"
        raise click.ClickException(
            f"no user with id {email_or_id!r} or with it as a provider-verified email"
            + (hint if ignored else "")
        )
    if len(verified) > 1:
        ids = ", ".join(verified)
        raise click.ClickException(f"several users have {email_or_id!r}: use one of the ids {ids}")
    return next(iter(verified.values()))


def _check_role(role: str, user: UserView | None = None) -> None:
    """Only known role names: a typo must fail, not create a role nobody checks."""
    if role == "user":
        raise click.ClickException("every user has the role 'user': it cannot be changed")
    if role in known_roles() or (user is not None and role in user.granted_roles):
        return  # a role dropped from APP_ROLES can still be revoked from who has it
    known = ", ".join(sorted(known_roles()))
    raise click.ClickException(
        f"unknown role {role!r}: known roles are {known} (add yours to APP_ROLES, comma-separated)"
    )


def _change_role(email_or_id: str, role: str, granted: bool) -> UserView:
    if granted:
        _check_role(role)  # before looking anyone up
    user = _one_user(email_or_id)
    if not granted:
        _check_role(role, user)
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
    """Give ROLE to the user with this provider-verified email (or user id).

    ROLE is admin, one of SECURITY_ROLES or one of APP_ROLES.
    """
    _change_role(email_or_id, role, granted=True)


@roles_cli.command("revoke")
@click.argument("email_or_id")
@click.argument("role")
def revoke(email_or_id: str, role: str) -> None:
    """Take ROLE away from the user with this provider-verified email (or user id)."""
    user = _change_role(email_or_id, role, granted=False)
    if role in user.roles:
        click.echo(f"{role} comes from ADMIN_EMAILS: remove the address there", err=True)


users_cli = AppGroup("users", help="Manage user accounts.")


@users_cli.command("delete")
@click.argument("email_or_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_user(email_or_id: str, yes: bool) -> None:
    """Delete a user (by provider-verified email or id): revoke grants, delete all their data."""
    user = _one_user(email_or_id)
    if not yes:
        click.confirm(f"Delete {user.id} ({user.email}) and all their data?", abort=True)
    unrevoked = delete_account(user, by="cli")
    click.echo(f"deleted {user.id}")
    providers = current_app.extensions["providers"]
    for outcome in unrevoked:
        provider = providers[outcome.provider]
        click.echo(
            f"{provider.title} may still list this app ({outcome.reason}): the person can "
            f"remove it at {provider.user_apps_url}",
            err=True,
        )


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
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Check deadlines (API versions that expire) as of this day, e.g. 2028-01-31.",
)
def doctor(as_json: bool, today: datetime | None) -> None:
    """Check every provider, Redis and the settings; exit 1 when something is wrong."""
    day = today.date() if today else None
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    sys.exit(run_doctor(app, as_json, day))


def register_cli(app: Flask) -> None:
    app.cli.add_command(tokens_cli)
    app.cli.add_command(roles_cli)
    app.cli.add_command(auth_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(audit_cli)
