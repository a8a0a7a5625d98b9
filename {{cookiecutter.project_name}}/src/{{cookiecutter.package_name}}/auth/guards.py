"""Decorators that protect routes: HTML gets a redirect to /login, APIs get 401 JSON."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import g, redirect, request, session

from ..errors import AppError, wants_json
from ..extensions import user_store
from ..users import User

F = TypeVar("F", bound=Callable[..., Any])


def current_user() -> User | None:
    """The signed-in user, loaded once per request; a deleted user signs the session out."""
    if "user" not in g:
        user_id = session.get("user_id")
        user = user_store().get(user_id) if user_id else None
        if user_id and user is None:
            session.clear()
        g.user = user
    return g.user


def login_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            if wants_json():
                raise AppError(
                    401,
                    "unauthorized",
                    "Sign in to use this endpoint.",
                    "Sign in at /login, then send the session cookie.",
                )
            return redirect("/login?" + urlencode({"next": request.full_path.rstrip("?")}))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
