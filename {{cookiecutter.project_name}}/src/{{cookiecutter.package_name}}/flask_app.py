"""The Flask class of this app: Flask with two costs of every request taken out.

- JSON answers are encoded by msgspec (which already encodes the session records): the
  same sorted keys as Flask's own encoder, at a small fraction of its cost; `json.dumps`
  was the largest part of /api/me's own Python work. Compact output only: in debug mode,
  or with `app.json.compact = False`, Flask's indented output is kept. Types msgspec knows
  are written its way: datetimes and dates in RFC 3339 (Flask writes HTTP dates).
- `ensure_sync`, which Flask calls before each view and hook to let async views run,
  decides once per function instead of inspecting the function on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import msgspec
from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider


class MsgspecJSONProvider(DefaultJSONProvider):
    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        # Flask's `default` for what msgspec does not know (it raises TypeError as usual).
        self._encoder = msgspec.json.Encoder(enc_hook=self.default, order="sorted")

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:  # json.dumps options (indent, separators...): Flask's encoder
            return super().dumps(obj, **kwargs)
        return self._encoder.encode(obj).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        app = cast(Flask, self._app)
        if self.compact is False or (self.compact is None and app.debug):
            return cast(Response, super().response(*args, **kwargs))
        body = self._encoder.encode(self._prepare_response_obj(args, kwargs))
        return app.response_class(body + b"\n", mimetype=self.mimetype)


class App(Flask):
    json_provider_class = MsgspecJSONProvider

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_callables: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._sync_callables[func]
        except KeyError:
            wrapped = self._sync_callables[func] = super().ensure_sync(func)
            return wrapped
        except TypeError:  # an unhashable callable: asked every time, as Flask does
            return super().ensure_sync(func)
