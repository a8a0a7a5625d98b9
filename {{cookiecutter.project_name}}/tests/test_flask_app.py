"""The app's Flask class: JSON answers as Flask would write them, `ensure_sync` decided once.

Plain Flask apps of that class, driven with Flask's test client: what is checked is the
class, not a route of the app (the app's own JSON routes are checked everywhere else).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from flask import Flask, jsonify

from {{ cookiecutter.package_name }}.flask_app import App


@dataclass
class Point:
    y: int
    x: int


class Html:
    def __html__(self) -> str:
        return "<b>safe</b>"


def answer(app: Flask, body: Any) -> bytes:
    @app.get("/")
    def view() -> Any:
        return jsonify(body)

    return app.test_client().get("/").data


def test_json_answers_have_flasks_sorted_keys_and_compact_form() -> None:
    body = {"b": [1, {"z": None, "a": True}], "a": "Zoë", "c": 1.5}
    data = answer(App(__name__), body)
    assert data == b'{"a":"Zo\xc3\xab","b":[1,{"a":true,"z":null}],"c":1.5}\n'
    # The same document as Flask's own encoder writes (which escapes non-ASCII).
    assert json.loads(data) == json.loads(answer(Flask(__name__), body))


def test_types_flask_knows_are_still_encoded() -> None:
    body = {
        "point": Point(y=2, x=1),
        "price": Decimal("1.10"),
        "id": UUID(int=1),
        "html": Html(),
        "at": datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
    }
    sent = json.loads(answer(App(__name__), body))
    assert sent["point"] == {"x": 1, "y": 2}
    assert sent["price"] == "1.10"
    assert sent["id"] == "00000000-0000-0000-0000-000000000001"
    assert sent["html"] == "<b>safe</b>"  # Flask's `default`, which msgspec falls back on
    assert sent["at"] == "2026-12-07T12:00:00Z"  # RFC 3339, where Flask writes an HTTP date


def test_a_type_nobody_knows_fails_as_with_flask() -> None:
    app = App(__name__)
    with app.app_context(), pytest.raises(TypeError):
        app.json.response({"what": object()})


def test_debug_mode_keeps_flasks_indented_output() -> None:
    app = App(__name__)
    app.debug = True
    assert answer(app, {"b": 1, "a": 2}) == b'{\n  "a": 2,\n  "b": 1\n}\n'


def test_dumps_is_msgspecs_unless_given_json_dumps_options() -> None:
    app = App(__name__)
    with app.app_context():
        assert app.json.dumps({"b": 1, "a": "<"}) == '{"a":"<","b":1}'
        assert app.json.dumps({"a": 1}, indent=1) == '{\n "a": 1\n}'
        # Jinja's tojson passes sort_keys, so templates keep Flask's encoder, escaped for HTML.
        # (The template is spelled without its braces in one piece: this file is baked.)
        template = "{" * 2 + " value|tojson " + "}" * 2
        page = app.jinja_env.from_string(template).render(value={"a": "<"})
    assert page == '{"a": "\\u003c"}'


def test_ensure_sync_asks_flask_once_per_function() -> None:
    app = App(__name__)
    asked: list[Any] = []
    original = Flask.ensure_sync

    def counting(self: Flask, func: Any) -> Any:
        asked.append(func)
        return original(self, func)

    def view() -> str:
        return "ok"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Flask, "ensure_sync", counting)
        assert app.ensure_sync(view) is view
        assert app.ensure_sync(view) is view
    assert asked == [view]


def test_ensure_sync_still_refuses_or_runs_async_views_as_flask_does() -> None:
    async def view() -> str:
        return "ok"

    def outcome(app: Flask) -> tuple[str, str]:
        try:
            return "ran", app.ensure_sync(view)()
        except RuntimeError as error:  # Flask without its async extra (asgiref)
            return "refused", str(error)

    assert outcome(App(__name__)) == outcome(Flask(__name__))
