"""Reference apps: the same JSON body as /api/me, with as little machinery as possible.

Served by gunicorn exactly like the app, e.g. `gunicorn 'bench.reference_apps:create_app("bare")'`:

- `bare`: a Flask route returning the body; no session at all (the ceiling).
- `redis_get`: reads its session with exactly one Redis GET and returns what it read (the
  floor for any Redis-backed session).
- `cookie_session`: Flask's default signed-cookie session holding the user (what most Flask
  apps use; no server-side state).

Environment: `BENCH_BODY` (the JSON to serve), `REDIS_URL` (redis_get), `SECRET_KEY`
(cookie_session). `POST /bench/session` sets a session cookie for the load generator.
"""

from __future__ import annotations

import json
import os
import secrets

import redis
from flask import Flask, Response, abort, jsonify, request, session

KINDS = ("bare", "redis_get", "cookie_session")
SESSION_COOKIE = "bench_sid"
KEY_PREFIX = "bench:ref:"


def _json(body: object) -> Response:
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"  # as /api/me
    return response


def create_app(kind: str) -> Flask:
    if kind not in KINDS:
        raise ValueError(f"unknown reference app {kind!r}: one of {', '.join(KINDS)}")
    body = json.loads(os.environ["BENCH_BODY"])
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48),
        SESSION_REFRESH_EACH_REQUEST=False,  # as the app: reading never rewrites the cookie
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    if kind == "bare":

        @app.get("/api/me")
        def me_bare() -> Response:
            return _json(body)

    elif kind == "redis_get":
        # The app's client options (redis.py): short timeouts, periodic health check.
        client = redis.Redis.from_url(
            os.environ["REDIS_URL"],
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=30,
        )

        @app.post("/bench/session")
        def start_redis_session() -> Response:
            sid = secrets.token_urlsafe(32)
            client.set(KEY_PREFIX + sid, json.dumps(body), ex=3600)
            response = jsonify(status="ok")
            response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Lax")
            return response

        @app.get("/api/me")
        def me_redis_get() -> Response:
            sid = request.cookies.get(SESSION_COOKIE)
            raw = client.get(KEY_PREFIX + sid) if sid else None
            if raw is None:
                abort(401)
            return _json(json.loads(raw))

    else:

        @app.post("/bench/session")
        def start_cookie_session() -> Response:
            session["user_id"] = body["id"]
            session["user"] = body
            return jsonify(status="ok")

        @app.get("/api/me")
        def me_cookie_session() -> Response:
            user = session.get("user")
            if not user:
                abort(401)
            return _json(user)

    return app
