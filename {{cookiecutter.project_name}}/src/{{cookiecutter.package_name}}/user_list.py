"""The admin's list of users, a page at a time, at a cost that does not grow with the users.

Keyset pagination: a page starts after the last row of the previous one, found in an index;
never OFFSET, which reads every row it skips. Without a search, users come by creation
(`created_at`, `id`). A search `q` lists the users whose email starts with it (by email),
then those whose name starts with it and email does not (by name): two index ranges, each
user once. Where many names and emails both match, a name page may come back short rather
than read on: each request reads at most NAME_SCAN_FACTOR x limit rows of the name index,
so a short page with a `next_cursor` is normal; the list ends when `next_cursor` is null.

The cursor is opaque and tamper-evident: the position (which may hold an email) encrypted
and authenticated with AES-GCM under a key derived from SECRET_KEY, bound to its search.
A cursor that does not decrypt, or belongs to another search, is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Select, select, tuple_

from .errors import AppError
from .models import User, db
from .sessions import NONCE_BYTES, derive_key
from .users import UserStore, UserView

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_QUERY = 320  # characters of `q`: an email is at most this long
MAX_CURSOR = 1024  # characters of `cursor`: ours are shorter
NAME_SCAN_FACTOR = 4  # name-index rows read per requested user, at most
LIST_HINT = (
    f"limit is a whole number from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}); cursor is the "
    "next_cursor of the previous page; q is the start of an email or name."
)

BY_CREATION, BY_EMAIL, BY_NAME = "c", "e", "n"


class Position(NamedTuple):
    """Where the next page starts: after (key, id) in the order of `phase`.

    A key of None starts the phase from its beginning (the name phase after the emails).
    """

    phase: str
    key: int | str | None
    id: str | None


@dataclass(frozen=True)
class ListRequest:
    limit: int
    q: str  # lowercased, stripped; "" lists everyone
    after: Position | None


@dataclass(frozen=True)
class Page:
    users: list[UserView]
    next: Position | None


# --- the cursor -----------------------------------------------------------------------------


class InvalidCursor(Exception):  # noqa: N818
    """Not one of ours, altered, from another search or another SECRET_KEY."""


class CursorCodec:
    """Positions to opaque strings and back: AES-GCM, the search as associated data."""

    def __init__(self, secret_key: str) -> None:
        self._aead = AESGCM(derive_key(secret_key, b"user-list-cursor"))

    def encode(self, position: Position, q: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(list(position), separators=(",", ":")).encode()
        sealed = nonce + self._aead.encrypt(nonce, plain, q.encode())
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def decode(self, cursor: str, q: str) -> Position:
        try:
            sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
            values = json.loads(self._aead.decrypt(nonce, ciphertext, q.encode()))
            position = Position(*values)
        except (binascii.Error, ValueError, TypeError, InvalidTag) as exc:
            raise InvalidCursor from exc
        if not _well_formed(position, searching=bool(q)):
            raise InvalidCursor
        return position


def _well_formed(position: Position, searching: bool) -> bool:
    """Ours decrypt to this shape; checked anyway, as a cursor may come from an older app."""
    phase, key, user_id = position
    if (user_id is None) != (key is None) or not isinstance(user_id, str | None):
        return False
    if phase == BY_CREATION:
        return not searching and isinstance(key, int) and not isinstance(key, bool)
    if phase == BY_EMAIL:
        return searching and isinstance(key, str)
    return phase == BY_NAME and searching and isinstance(key, str | None)


# --- the request's parameters ---------------------------------------------------------------


def query_arg(raw_query: bytes, name: str) -> str | None:
    """One query-string parameter, decoded strictly: werkzeug turns bad UTF-8 into U+FFFD,
    which would search for something nobody typed. The first occurrence counts."""
    for pair in raw_query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) != name.encode():
            continue
        try:
            return unquote_to_bytes(value.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            raise _bad(f"`{name}` is not valid UTF-8.") from None
    return None


def parse_list_request(raw_query: bytes, codec: CursorCodec) -> ListRequest:
    """`limit`, `cursor` and `q`, checked: anything wrong is a 400 that says what is right."""
    raw_limit = query_arg(raw_query, "limit")
    limit = _limit(raw_limit) if raw_limit else DEFAULT_LIMIT
    q = (query_arg(raw_query, "q") or "").strip()
    if len(q) > MAX_QUERY or "\x00" in q:
        raise _bad(f"`q` must be at most {MAX_QUERY} characters, without NUL.")
    q = q.lower()
    cursor = query_arg(raw_query, "cursor") or ""
    after = None
    if cursor:
        try:
            if len(cursor) > MAX_CURSOR:
                raise InvalidCursor
            after = codec.decode(cursor, q)
        except InvalidCursor:
            raise AppError(
                400,
                "invalid_cursor",
                "This cursor is not valid for this list.",
                "Use the next_cursor of the previous page, with the same q; or start again "
                "without a cursor.",
            ) from None
    return ListRequest(limit, q, after)


def _limit(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= MAX_LIMIT):
        raise _bad(f"`limit` must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


def _bad(message: str) -> AppError:
    return AppError(400, "invalid_request", message, LIST_HINT)


# --- the queries ----------------------------------------------------------------------------


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """[low, high): exactly the strings that start with `prefix`, in code point order.

    `high` is the prefix with its last character raised by one (surrogates skipped, as they
    cannot be stored); None when there is no such string (the prefix ends in U+10FFFF).
    """
    head = prefix
    while head:
        following = ord(head[-1]) + 1
        following = 0xE000 if 0xD800 <= following <= 0xDFFF else following
        if following <= 0x10FFFF:
            return prefix, head[:-1] + chr(following)
        head = head[:-1]
    return prefix, None


def user_page(store: UserStore, request: ListRequest) -> Page:
    """One page: at most `limit` users and where the next page starts (None: no more)."""
    if not request.q:
        ids, following = _by_creation(request.limit, request.after)
    else:
        ids, following = _search(request.q, request.limit, request.after)
    return Page(store.views(ids), following)


def next_cursor(codec: CursorCodec, page: Page, request: ListRequest) -> str | None:
    """The `next_cursor` of a page: None on the last one."""
    return codec.encode(page.next, request.q) if page.next is not None else None


def _after(statement: Select, key: Any, position: Position | None) -> Select:
    """Rows strictly after the position, in (key, id) order: where the index walk starts."""
    if position is None or position.key is None:
        return statement
    return statement.where(tuple_(key, User.id) > tuple_(position.key, position.id))


def _prefixed(statement: Select, key: Any, q: str, position: Position | None) -> Select:
    """Rows whose key starts with q, after the position: one index range.

    With a position, it is the range's start (SQLite would otherwise start at the prefix
    and filter its way to the position, reading every row of the earlier pages again).
    """
    low, high = prefix_range(q)
    if position is None or position.key is None:
        statement = statement.where(key >= low)
    else:
        statement = _after(statement, key, position)
    return statement.where(key < high) if high is not None else statement


def _by_creation(limit: int, after: Position | None) -> tuple[list[str], Position | None]:
    statement = select(User.id, User.created_at).order_by(User.created_at, User.id)
    rows = db.session.execute(_after(statement, User.created_at, after).limit(limit + 1)).all()
    if len(rows) <= limit:
        return [r.id for r in rows], None
    last = rows[limit - 1]
    return [r.id for r in rows[:limit]], Position(BY_CREATION, last.created_at, last.id)


def _search(q: str, limit: int, after: Position | None) -> tuple[list[str], Position | None]:
    found: list[str] = []
    if after is None or after.phase == BY_EMAIL:
        found, following = _by_email(q, limit, after)
        if following is not None:
            return found, following
        after = Position(BY_NAME, None, None)
    return _by_name(q, limit, after, found)


def _by_email(q: str, limit: int, after: Position | None) -> tuple[list[str], Position | None]:
    key = User.email_lower
    statement = _prefixed(select(User.id, key), key, q, after).order_by(key, User.id)
    rows = db.session.execute(statement.limit(limit + 1)).all()
    if len(rows) <= limit:
        return [r.id for r in rows], None
    last = rows[limit - 1]
    return [r.id for r in rows[:limit]], Position(BY_EMAIL, last.email_lower, last.id)


def _by_name(
    q: str, limit: int, after: Position, found: list[str]
) -> tuple[list[str], Position | None]:
    """Users whose name starts with q and email does not (those came by email already).

    Reads at most NAME_SCAN_FACTOR rows per user still wanted: where many match both ways,
    the page ends early with a cursor, instead of reading every match in one request.
    """
    key = User.name_lower
    columns = select(User.id, key, User.email_lower)
    statement = _prefixed(columns, key, q, after).order_by(key, User.id)
    budget = max(limit - len(found), 1) * NAME_SCAN_FACTOR + 1
    rows = db.session.execute(statement.limit(budget)).all()
    position = after
    for row in rows:
        if row.email_lower is not None and row.email_lower.startswith(q):
            position = Position(BY_NAME, row.name_lower, row.id)  # listed by email: pass it
            continue
        if len(found) == limit:
            return found, position  # one more is there: the next page starts with it
        found.append(row.id)
        position = Position(BY_NAME, row.name_lower, row.id)
    return found, (position if len(rows) == budget else None)
