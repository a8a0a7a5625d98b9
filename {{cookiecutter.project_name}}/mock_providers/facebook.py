"""Mock Facebook: the Login dialog on www.facebook.com and the versioned Graph API.

Quirks kept on purpose: every URL is versioned (`/v26.0/...`; unversioned paths use the
default version), scopes are comma-separated, the callback ends in `#_=_`, the token endpoint
takes GET or POST but never Basic auth, redirect_uri must be byte-identical at the token step,
errors are nested `error` objects keyed by numeric codes, /me gives only name and id
unless `fields` is passed, the email may simply be missing, Graph calls need `appsecret_proof`,
and /me sometimes answers a bare `false`.

The person's grant outlives the tokens: a declined email stays declined (the dialog asks
again only with `auth_type=rerequest`), an expired user token cannot revoke anything (190),
and `DELETE /{user-id}/permissions` with the app token `{app-id}|{app-secret}` removes the
app from the person's settings whatever became of the tokens.

PKCE as Facebook does it: Meta documents `code_challenge` only for its OIDC flow (scope
`openid`; "still in testing"), and there the code is bound to the challenge. A classic login
(no `openid`) silently drops the challenge, and a token request that then sends a
`code_verifier` is refused with code 1 (reported by better-auth#186 in 2024 and NangoHQ/nango
#7156 in 2026, on v22.0 and v26.0). This mock issues no ID token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import Blueprint, Flask, Response, redirect, request
from werkzeug.routing import BaseConverter
from werkzeug.wrappers import Response as BaseResponse

from .core import (
    URLSAFE,
    MockState,
    b64url,
    base_url,
    bearer_token,
    json_response,
    pause,
    random_text,
    state,
)
from .facts import (
    AppGrant,
    Env,
    MockControl,
    MockFacts,
    RateLimit,
    call,
    expect,
)
from .oauth import AccessToken, AuthRequest, Grant, OAuthServer, Problem, Secret, redirect_back
from .pages import decide, error_page, persona_avatar, persona_with
from .settings import MockSettings

NAME = "facebook"
TITLE = "Facebook"
# The app's credentials here (MockSettings.credentials), shaped like real ones.
CLIENT = ("1234567890123456", "0123456789abcdef0123456789abcdef")
DEFAULT_VERSION = "v26.0"
LONG_LIVED = 5183944
SHORT_LIVED = 5400
DATA_ACCESS_DAYS = 90
GRAPH_ENDPOINTS = {"facebook.me", "facebook.permissions", "facebook.debug_token"}
# Permissions a person may decline in the dialog; public_profile is always granted.
DECLINABLE = ("email",)
# Graph's "try again" errors ("Handling Errors": 1 API Unknown, 2 API Service; bodies as seen
# in Trustroots/trustroots#673 and php-graph-sdk#478), each with "is_transient": true.
TRANSIENT_MESSAGES = {
    1: "An unknown error has occurred.",
    2: "An unexpected error has occurred. Please retry your request later.",
}

PERSONAS: dict[str, dict[str, Any]] = {
    "ada": dict(
        id="10229384756102938",
        name="Ada Lovelace",
        first_name="Ada",
        last_name="Lovelace",
        short_name="Ada",
        email="ada@example.com",
    ),
    "phone": dict(
        id="10161234567890123",
        name="Pat Phone",
        first_name="Pat",
        last_name="Phone",
        short_name="Pat",
        email=None,
    ),
}
PERSONA_LABELS = {
    "ada": "Ada Lovelace, ada@example.com (email granted, never marked verified)",
    "phone": "Pat Phone, signed up with a phone number: /me has no email at all",
}

SWITCHES: dict[str, Any] = dict(
    require_appsecret_proof=True,
    me="ok",
    legacy_token_format=False,
    short_lived=False,
    usage_percent=None,
    expires_in=None,
    picture="ok",
    decline=None,
    user_token_failure=None,
    transient=None,
    transient_status=500,
    transient_calls=None,
)
CHOICES: dict[str, tuple[Any, ...]] = dict(
    require_appsecret_proof=(True, False),
    me=("ok", "false", "null_id", "expired", "password_changed", "data_access_expired"),
    picture=("ok", "string"),
    legacy_token_format=(True, False),
    short_lived=(True, False),
    decline=(None, *DECLINABLE),
    user_token_failure=(None, "password_changed", "data_access_expired"),
    transient=(None, 1, 2),
    transient_status=(400, 401, 500, 503),
)
TOKEN_FAILURES = {
    "expired": (463, "Error validating access token: Session has expired on {when}."),
    "password_changed": (
        460,
        "Error validating access token: The session has been invalidated because the user "
        "changed their password or Facebook has changed the session for security reasons.",
    ),
    "data_access_expired": (
        493,
        "Error validating access token: The access token is invalid since the user hasn't "
        "engaged the app in longer than 90 days.",
    ),
}
VERIFIER_WITHOUT_CHALLENGE = (
    "code_verifier param is provided without a code_challenge in authorization request."
)
# Reported for a code bound to a challenge and redeemed without the verifier (expo/expo#15980);
# the report does not show the error code: 100, Facebook's usual one at this step, is a guess.
INVALID_VERIFIER = (
    "Invalid code verifier. Code verifier should be a cryptographically random string using "
    "the characters A-Z, a-z, 0-9, and the punctuation characters -._~ (hyphen, period, "
    "underscore, and tilde), between 43 and 128 characters long."
)
REDIRECT_MISMATCH = (
    "Error validating verification code. Please make sure your redirect_uri is identical to "
    "the one you used in the OAuth dialog request"
)


class VersionConverter(BaseConverter):
    """A Graph API version segment such as `v26.0`."""

    regex = r"v\d+\.\d+"


# Token-endpoint refusals (see oauth.Problem): Graph's error code and message.
REFUSALS: dict[str, tuple[int, str]] = {
    "client.missing": (101, "Missing client_id parameter."),
    "client.unknown": (101, "Error validating application. Invalid application ID."),
    "client": (1, "Error validating client secret."),
    "code.used": (100, "This authorization code has been used."),
    "code.expired": (100, "This authorization code has expired."),
    "code.redirect": (100, REDIRECT_MISMATCH),
    "code": (100, "Invalid verification code format."),
    "pkce.unexpected": (1, VERIFIER_WITHOUT_CHALLENGE),
    "pkce": (100, INVALID_VERIFIER),
    "grant_type": (100, "Unsupported grant_type."),
}


class TokenErrors:
    """Graph's nested error objects, numeric codes and all."""

    def refuse(self, problem: Problem) -> BaseResponse:
        code, message = problem.pick(REFUSALS)
        headers = None
        if problem.reason == "code.redirect":
            challenge = f'OAuth "Facebook Platform" "invalid_code" "{message}"'
            headers = {"WWW-Authenticate": challenge}
        return fb_error(400, message, code, headers=headers)

    def unavailable(self, status: int) -> BaseResponse:
        message = "An unexpected error has occurred. Please retry your request later."
        return fb_error(status, message, 2)


class Facebook(OAuthServer):
    """Graph's token endpoint: codes, app tokens and the long-lived exchange."""

    def grants(self) -> dict[str, Grant]:
        return dict(
            authorization_code=self.code_grant,
            client_credentials=app_token_grant,
            fb_exchange_token=exchange_grant,
        )

    def code_grant(self, client_id: str, data: dict[str, str]) -> BaseResponse:
        record = self.redeem(client_id, data)
        lifetime = SHORT_LIVED if self.switch("short_lived") else LONG_LIVED
        return token_reply(issue_user_token(record.user, record.scopes, lifetime))


SERVER = Facebook(
    NAME,
    code=Secret("AQ", 330, URLSAFE),
    access=Secret("EAAR", 180),
    client_auth=("client_secret_post",),  # Basic is not read at all
    params_in=("args", "form"),
    default_grant="authorization_code",
    burn_code_on_error=False,
    verifier_without_challenge="refuse",
    errors=TokenErrors(),
)


bp = Blueprint(NAME, __name__)


View = Callable[..., BaseResponse]


def graph_route(
    rule: str, endpoint: str, methods: tuple[str, ...] = ("GET",)
) -> Callable[[View], View]:
    """Serve `rule` under `/graph/v<N>` and, with the default version, under bare `/graph`."""

    def decorate(view: View) -> View:
        bp.add_url_rule(f"/graph/<fbversion:version>{rule}", endpoint, view, methods=methods)
        bp.add_url_rule(
            f"/graph{rule}", endpoint, view, methods=methods, defaults={"version": None}
        )
        return view

    return decorate


# --- the app's callbacks, sent as Facebook sends them -------------------------------------

CALLBACK_PATHS = {"deauthorize": "deauthorize", "data_deletion": "data-deletion"}
control = Blueprint("facebook_control", __name__, url_prefix="/_mock/facebook")


def signed_request(payload: dict[str, Any], secret: str) -> str:
    """Facebook's format: base64url(HMAC-SHA256(secret, encoded payload)).encoded payload."""
    encoded = b64url(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()
    return f"{b64url(signature)}.{encoded}"


def send_callback(mock: MockState, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """POST a signed deauthorize or data-deletion callback to the app, as Facebook would.

    Options: `user` (persona) or `user_id`, `algorithm` (default HMAC-SHA256), `tamper`
    (sign with a wrong secret), `age` (seconds: `issued_at` that long ago; negative: in the
    future), `signed_request` (send this one again verbatim, as a retry does). The answer
    carries the signed_request that was sent.
    """
    sent = options.get("signed_request")
    if not sent:
        persona = PERSONAS.get(options.get("user", "ada"), PERSONAS["ada"])
        payload = {
            "algorithm": options.get("algorithm", "HMAC-SHA256"),
            "issued_at": int(time.time()) - int(options.get("age", 0)),
            "user_id": str(options.get("user_id") or persona["id"]),
        }
        secret = mock.settings.client_secret(NAME)
        if options.get("tamper"):
            secret = "not-the-app-secret"
        sent = signed_request(payload, secret)
    url = f"{mock.settings.app_url.rstrip('/')}/auth/facebook/{CALLBACK_PATHS[kind]}"
    response = requests.post(url, data={"signed_request": sent}, timeout=10)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return {"status": response.status_code, "body": body, "signed_request": sent}


@control.post("/callbacks/<kind>")
def callback(kind: str) -> Response:
    """`/_mock/facebook/callbacks/<kind>`: make the mock call the app (not counted)."""
    if kind not in CALLBACK_PATHS:
        return json_response(dict(error=f"kind must be one of {list(CALLBACK_PATHS)}"), 404)
    return json_response(send_callback(state(), kind, request.get_json(silent=True) or {}))


def callback_to_app(control: MockControl, kind: str, **options: Any) -> dict[str, Any]:
    """From a test: have the mock send the app a callback (options: `send_callback`'s), over
    the control API; the app's answer as {"status": int, "body": ..., "signed_request": str}."""
    return control.call("POST", f"facebook/callbacks/{kind}", json=options)


def register(app: Flask) -> list[str]:
    app.url_map.converters["fbversion"] = VersionConverter
    app.register_blueprint(bp, url_prefix="/facebook")
    app.register_blueprint(control)
    return [NAME]


def app_env(base: str, settings: MockSettings) -> dict[str, str]:
    return {
        "FACEBOOK_CLIENT_ID": settings.client_id(NAME),
        "FACEBOOK_CLIENT_SECRET": settings.client_secret(NAME),
        "FACEBOOK_URL": f"{base}/facebook/www",
        "FACEBOOK_GRAPH_URL": f"{base}/facebook/graph",
        "FACEBOOK_GRAPH_VERSION": DEFAULT_VERSION,
    }


# --- helpers ------------------------------------------------------------------------------


def fb_error(
    status: int,
    message: str,
    code: int,
    kind: str = "OAuthException",
    subcode: int | None = None,
    headers: dict[str, str] | None = None,
    transient: bool = False,
) -> Response:
    """Graph's nested error object, with the fbtrace_id every real error carries."""
    error: dict[str, Any] = dict(message=message, type=kind, code=code)
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient or code in (2, 4):
        error["is_transient"] = True
    error["fbtrace_id"] = "A" + random_text(22)
    return json_response(dict(error=error), status, headers=headers)


def appsecret_proof(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def fb_time(timestamp: float) -> str:
    return time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(timestamp))


def parse_scopes(raw: str) -> list[str]:
    scopes: list[str] = []
    for scope in raw.replace(" ", ",").split(","):
        if scope and scope not in scopes:
            scopes.append(scope)
    return scopes


def granted(scopes: list[str]) -> list[str]:
    """public_profile is always granted, whether asked for or not."""
    return scopes if "public_profile" in scopes else [*scopes, "public_profile"]


def split_fields(raw: str) -> list[str]:
    """Top-level items of a `fields` list, e.g. `id,picture.width(100).height(100),email`."""
    items, depth, current = [], 0, ""
    for char in raw:
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    items.append(current.strip())
    return [item for item in items if item]


def picture_data(persona: dict[str, Any], spec: str = "") -> dict[str, Any]:
    """The `picture` field: a lookaside URL that this mock serves as an SVG."""
    size = 50
    if "type(large)" in spec:
        size = 200
    elif "type(normal)" in spec:
        size = 100
    elif match := re.search(r"width\((\d+)\)", spec):
        size = int(match.group(1))
    user_id = persona["id"]
    digest = hashlib.sha256(user_id.encode()).hexdigest()[:24]
    query = urlencode(
        dict(
            asid=user_id,
            height=size,
            width=size,
            ext=int(time.time()) + 30 * 86400,
            hash=f"Ab{digest}",
        )
    )
    url = f"{base_url()}/facebook/pic/profilepic/?{query}"
    data = dict(height=size, is_silhouette=False, url=url, width=size)
    return dict(data=data)


def app_token_ok(mock: MockState, value: str) -> bool:
    """`APPID|APPSECRET`, or an app token from the client_credentials grant."""
    if value == f"{SERVER.client_id}|{SERVER.client_secret}":
        return True
    with mock.lock:
        return value in mock.store(NAME).extra.get("app_tokens", set())


def proof_refused(mock: MockState, token: str, required: bool) -> Response | None:
    """Graph's answer to a wrong (or a missing but required) `appsecret_proof`; else None."""
    proof = request.args.get("appsecret_proof") or request.form.get("appsecret_proof")
    if proof is None and required:
        return fb_error(
            400,
            "API calls from the server require an appsecret_proof argument",
            100,
            "GraphMethodException",
        )
    expected = appsecret_proof(SERVER.client_secret, token)
    if proof is not None and not hmac.compare_digest(proof.encode(), expected.encode()):
        return fb_error(
            400, "Invalid appsecret_proof provided in the API argument", 100, "GraphMethodException"
        )
    return None


def check_app_token(mock: MockState, value: str) -> Response | None:
    """None for this app's token (the app secret is in it: a proof is checked if sent)."""
    if not app_token_ok(mock, value):
        return fb_error(400, "Invalid OAuth access token signature.", 190)
    return proof_refused(mock, value, required=False)


def grants(mock: MockState) -> dict[str, dict[str, str]]:
    """Per persona, the permissions the person decided on: {"email": "declined", ...}.

    What Facebook remembers between logins, whatever becomes of the tokens; only
    `DELETE /{user-id}/permissions` (or a reset) forgets it. Call with `mock.lock` held.
    """
    return mock.store(NAME).extra.setdefault("grants", {})


def take_transient_call(mock: MockState) -> bool:
    """Whether this Graph call fails with the `transient` error (`transient_calls` counts down)."""
    with mock.lock:
        switches = mock.switches[NAME]
        if switches["transient"] is None:
            return False
        remaining = switches["transient_calls"]
        if remaining is None:
            return True
        if int(remaining) <= 0:
            return False
        switches["transient_calls"] = int(remaining) - 1
        return True


def request_token() -> str | None:
    return (
        request.args.get("access_token")
        or request.form.get("access_token")
        or bearer_token(("bearer", "oauth"))
    )


def check_user_token(mock: MockState, value: str | None) -> AccessToken | Response:
    """A user token that Graph would accept, or the error Graph would send."""
    if not value:
        return fb_error(
            400,
            "An active access token must be used to query information about the current user.",
            2500,
        )
    record = SERVER.token(value)
    if record is None:
        return fb_error(400, "Invalid OAuth access token - Cannot parse access token", 190)
    refused = proof_refused(mock, value, mock.switch(NAME, "require_appsecret_proof"))
    if refused is not None:
        return refused
    if record.revoked:
        message = (
            "Error validating access token: The user has not authorized application "
            f"{record.client_id}."
        )
        return fb_error(400, message, 190, subcode=458)
    if not record.alive():
        return token_failure("expired", record)
    failure = mock.switch(NAME, "user_token_failure")
    if failure is not None:  # every user token died; the person's grant did not
        return token_failure(failure, record)
    return record


def token_failure(kind: str, record: AccessToken) -> Response:
    subcode, message = TOKEN_FAILURES[kind]
    now = time.time()
    when = fb_time(min(record.expires_at or now, now - 60))
    message = message.format(when=when)
    if kind == "expired":
        message += f" The current time is {fb_time(now)}."
    return fb_error(400, message, 190, subcode=subcode)


def issue_user_token(user: str, scopes: list[str], lifetime: int) -> str:
    override = SERVER.switch("expires_in")
    lifetime = int(override) if override is not None else lifetime
    return SERVER.new_access(user, SERVER.client_id, scopes, lifetime)


def token_reply(value: str) -> Response:
    with state().lock:
        record = SERVER.store.tokens[value]
    lifetime = max(int((record.expires_at or 0) - record.issued_at), 0)
    if SERVER.switch("legacy_token_format"):
        body = urlencode(dict(access_token=value, expires=lifetime))
        return Response(body, mimetype="text/plain")
    return json_response(dict(access_token=value, token_type="bearer", expires_in=lifetime))


def app_token_grant(client_id: str, data: dict[str, str]) -> BaseResponse:
    """client_credentials: an app token `{app-id}|{random}` (Graph accepts it as the app's)."""
    mock = state()
    value = mock.mint(f"{client_id}|{random_text(27, URLSAFE)}")
    with mock.lock:
        SERVER.store.extra.setdefault("app_tokens", set()).add(value)
    return json_response(dict(access_token=value, token_type="bearer"))


def exchange_grant(client_id: str, data: dict[str, str]) -> BaseResponse:
    """fb_exchange_token: a live token in, a long-lived one out; a dead one gets code 190."""
    record = SERVER.token(data.get("fb_exchange_token", ""))
    if record is None:
        return fb_error(400, "Invalid OAuth access token - Cannot parse access token", 190)
    if record.revoked:
        return fb_error(
            400,
            "Error validating access token: The user has not authorized application.",
            190,
            subcode=458,
        )
    if not record.alive():
        return token_failure("expired", record)
    return token_reply(issue_user_token(record.user, record.scopes, LONG_LIVED))


# --- usage accounting for Graph calls -------------------------------------------------------


@bp.before_request
def graph_faults() -> Response | None:
    """Graph calls: throttling (`usage_percent`), then "try again" errors (`transient`)."""
    if request.endpoint not in GRAPH_ENDPOINTS:
        return None
    mock = state()
    percent = mock.switch(NAME, "usage_percent")
    if percent is not None and int(percent) >= 100:
        return fb_error(400, "(#4) Application request limit reached", 4)
    if take_transient_call(mock):
        code = int(mock.switch(NAME, "transient"))
        status = int(mock.switch(NAME, "transient_status"))
        return fb_error(status, TRANSIENT_MESSAGES[code], code, transient=True)
    return None


@bp.after_request
def usage_header(response: Response) -> Response:
    percent = state().switch(NAME, "usage_percent")
    if request.endpoint in GRAPH_ENDPOINTS and percent is not None:
        usage = dict(call_count=int(percent), total_cputime=int(percent), total_time=int(percent))
        response.headers["X-App-Usage"] = json.dumps(usage, separators=(",", ":"))
    return response


# --- the login dialog -----------------------------------------------------------------------


@bp.route("/www/<fbversion:version>/dialog/oauth", methods=["GET", "POST"])
@bp.route("/www/dialog/oauth", methods=["GET", "POST"], defaults={"version": None})
def dialog(version: str | None) -> BaseResponse:
    mock = state()
    args = request.args
    req = AuthRequest.parse(parse_scopes)
    if req.client_id != SERVER.client_id:
        message = f"The provided app ID {req.client_id!r} does not look valid."
        return error_page(NAME, "Invalid App ID", message, 400)
    given = urlsplit(req.redirect_uri)._replace(query="", fragment="").geturl()
    if given != SERVER.registered_redirect:
        return error_page(
            NAME,
            "URL blocked",
            "This redirect failed because the redirect URI is not whitelisted in the app's "
            f"Client OAuth Settings (got {req.redirect_uri!r}, registered "
            f"{SERVER.registered_redirect!r}).",
            400,
        )
    if args.get("response_type", "code") != "code":
        return error_page(NAME, "Error", "This mock only supports response_type=code.", 400)
    return_scopes = args.get("return_scopes") == "true"
    rerequest = args.get("auth_type") == "rerequest"
    # Only the OIDC flow keeps the PKCE challenge; an unknown method falls back to plain.
    req = replace(
        req,
        challenge=req.challenge if "openid" in req.scopes else None,
        method="S256" if req.method == "S256" else "plain",
    )

    def approve(user: str) -> BaseResponse:
        asked = asked_scopes(mock, user, req.scopes, rerequest)
        if request.method == "POST":  # the consent page: unticked permissions are declined
            declined = [s for s in asked if s not in request.form.getlist("share")]
        else:
            declined = [s for s in asked if s == mock.switch(NAME, "decline")]
        allowed, denied = decide_permissions(mock, user, req.scopes, asked, declined)
        query = [("code", SERVER.new_code(req, user, scopes=allowed))]
        if return_scopes:
            query += [("granted_scopes", ",".join(allowed)), ("denied_scopes", ",".join(denied))]
        return redirect_back(req.redirect_uri, query, req.state, fragment="_=_", safe=",")

    def deny() -> BaseResponse:
        query = [
            ("error", "access_denied"),
            ("error_code", "200"),
            ("error_description", "Permissions error"),
            ("error_reason", "user_denied"),
        ]
        return redirect_back(req.redirect_uri, query, req.state, fragment="_=_")

    return decide(
        NAME,
        client_id=req.client_id,
        scopes=req.scopes,
        redirect_uri=req.redirect_uri,
        approve=approve,
        deny=deny,
        declinable=asked_scopes(mock, mock.switch(NAME, "user"), req.scopes, rerequest),
    )


def asked_scopes(mock: MockState, user: str, scopes: list[str], rerequest: bool) -> list[str]:
    """The permissions the dialog lets the person decline: a declined one is not asked
    again unless the dialog says auth_type=rerequest ("Manually Build a Login Flow")."""
    with mock.lock:
        grant = dict(grants(mock).get(user, {}))
    return [s for s in scopes if s in DECLINABLE and (rerequest or grant.get(s) != "declined")]


def decide_permissions(
    mock: MockState, user: str, scopes: list[str], asked: list[str], declined: list[str]
) -> tuple[list[str], list[str]]:
    """Record the person's decisions; returns the requested permissions (granted, declined)."""
    with mock.lock:
        grant = grants(mock).setdefault(user, {})
        grant["public_profile"] = "granted"
        for scope in asked:
            grant[scope] = "declined" if scope in declined else "granted"
        for scope in scopes:  # asked for the first time without a choice: granted
            grant.setdefault(scope, "granted")
        requested = granted(scopes)
        allowed = [s for s in requested if grant.get(s) == "granted"]
        denied = [s for s in requested if grant.get(s) == "declined"]
    return allowed, denied


# --- Graph API ------------------------------------------------------------------------------


graph_route("/oauth/access_token", "token", methods=("GET", "POST"))(SERVER.token_view)


@graph_route("/me", "me")
def me(version: str | None) -> Response:
    mock = state()
    pause(NAME)
    record = check_user_token(mock, request_token())
    if isinstance(record, Response):
        return record
    mode = mock.switch(NAME, "me")
    if mode == "false":
        return json_response(False)
    if mode in TOKEN_FAILURES:
        return token_failure(mode, record)
    persona = PERSONAS[record.user]
    raw = request.args.get("fields")
    wanted = split_fields(raw) if raw else ["name", "id"]
    body: dict[str, Any] = {}
    for item in wanted:
        name = re.split(r"[.{(]", item, maxsplit=1)[0]
        if name == "picture":
            body["picture"] = picture_data(persona, item)
            if mock.switch(NAME, "picture") == "string":  # `data` as a bare URL string
                body["picture"]["data"] = body["picture"]["data"]["url"]
        elif name == "email":
            if persona["email"] and "email" in record.scopes:
                body["email"] = persona["email"]
        elif name in ("id", "name", "first_name", "last_name", "short_name"):
            body[name] = persona[name]
        else:
            message = f"(#100) Tried accessing nonexisting field ({name}) on node type (User)"
            return fb_error(400, message, 100)
    if mode == "null_id" and "id" in body:
        body["id"] = None
    return json_response(body)


@graph_route("/debug_token", "debug_token")
def debug_token(version: str | None) -> Response:
    mock = state()
    if not app_token_ok(mock, request_token() or ""):
        return fb_error(400, "Invalid OAuth access token signature.", 190)
    record = SERVER.token(request.args.get("input_token", ""))
    if record is None:
        error = dict(code=190, message="Invalid OAuth access token.")
        return json_response(dict(data=dict(error=error, is_valid=False, scopes=[])))
    expires_at = record.expires_at or 0
    data: dict[str, Any] = dict(
        app_id=record.client_id,
        type="USER",
        application="Mock Social Login",
        data_access_expires_at=int(record.issued_at + DATA_ACCESS_DAYS * 86400),
        expires_at=int(expires_at),
        is_valid=record.alive(),
        issued_at=int(record.issued_at),
        scopes=record.scopes,
        granular_scopes=[dict(scope=s) for s in record.scopes if s != "public_profile"],
        user_id=PERSONAS[record.user]["id"],
    )
    if record.revoked:
        data["error"] = dict(
            code=190, subcode=458, message="The user has not authorized application."
        )
    elif not data["is_valid"]:
        data["error"] = dict(code=190, subcode=463, message="Session has expired.")
    return json_response(dict(data=data))


@graph_route("/<node>/permissions", "permissions", methods=("GET", "DELETE"))
def permissions(version: str | None, node: str) -> Response:
    """List or revoke the app's permissions, with the user's token or an app token."""
    mock = state()
    value = request_token()
    if value and "|" in value:  # an app token: `{app-id}|{app-secret}` or a minted one
        refused = check_app_token(mock, value)
        if refused is not None:
            return refused
        user = next((k for k, p in PERSONAS.items() if p["id"] == node), None)
        if user is None:
            return fb_error(400, f"(#100) Invalid user id {node!r}", 100)
    else:  # a user token must be alive: an expired one gets 190 and revokes nothing
        record = check_user_token(mock, value)
        if isinstance(record, Response):
            return record
        if node not in ("me", PERSONAS[record.user]["id"]):
            return fb_error(400, "(#100) Invalid user id", 100)
        user = record.user
    with mock.lock:
        if request.method == "DELETE":  # the app leaves the person's settings
            grants(mock).pop(user, None)
            for live in SERVER.store.tokens.values():
                if live.user == user:
                    live.revoked = True
            return json_response(dict(success=True))
        grant = dict(grants(mock).get(user, {}))
    return json_response(dict(data=[dict(permission=p, status=s) for p, s in grant.items()]))


@graph_route("/<node>/picture", "picture")
def picture(version: str | None, node: str) -> BaseResponse:
    mock = state()
    persona: dict[str, Any] | None
    if node == "me":
        record = check_user_token(mock, request_token())
        if isinstance(record, Response):
            return record
        persona = PERSONAS[record.user]
    else:
        persona = persona_with(PERSONAS, "id", node)
        if persona is None:
            return fb_error(400, f"(#100) Invalid id {node!r}", 100)
    spec = f"type({request.args['type']})" if "type" in request.args else ""
    data = picture_data(persona, spec)
    if request.args.get("redirect") in ("0", "false"):
        return json_response(data)
    return redirect(data["data"]["url"])


@bp.get("/pic/profilepic/")
def pic() -> Response:
    user_id = request.args.get("asid", "")
    return persona_avatar(persona_with(PERSONAS, "id", user_id), user_id)


# --- what the cross-provider tests need to know (mock_providers/facts.py) -----------------


def fact_graph(env: Env) -> str:
    return f"{env['FACEBOOK_GRAPH_URL']}/{env['FACEBOOK_GRAPH_VERSION']}"


def fact_app_token(env: Env) -> str:
    return f"{env['FACEBOOK_CLIENT_ID']}|{env['FACEBOOK_CLIENT_SECRET']}"


def fact_unverified_email(control: MockControl) -> str:
    """Facebook never says that an email is verified."""
    return PERSONAS["ada"]["email"]


def fact_token_works(env: Env, access_token: str) -> bool:
    """What Graph's debug_token (asked with the app token) says of the user token."""
    params = {"input_token": access_token, "access_token": fact_app_token(env)}
    answer = expect(call("GET", f"{fact_graph(env)}/debug_token", params=params), 200)
    return answer.json()["data"]["is_valid"] is True


def fact_remove_app(control: MockControl, env: Env, grant: AppGrant) -> None:
    """Removing the app in the person's settings, as DELETE /{user-id}/permissions does."""
    url = f"{fact_graph(env)}/{grant.subject}/permissions"
    answer = expect(call("DELETE", url, params={"access_token": fact_app_token(env)}), 200)
    if answer.json() != {"success": True}:
        raise AssertionError(f"Facebook did not remove the app: {answer.text}")


FACTS = MockFacts(
    name=NAME,
    other_persona="phone",
    email=PERSONAS["ada"]["email"],
    email_verified=False,
    unverified_email=fact_unverified_email,
    authorize_endpoint="dialog",
    profile_endpoint="me",
    revoke_endpoint="permissions",
    login_calls=2,
    api_variable="FACEBOOK_GRAPH_URL",
    refresh=None,
    most_tokens={"short_lived": True},  # a short-lived login token is exchanged at once
    token_works=fact_token_works,
    remove_app=fact_remove_app,
    token_refused={"me": "password_changed"},
    rate_limits=(RateLimit("usage", {"usage_percent": 100}, {"usage_percent": None}, (1, 3600)),),
    profile_changes_each_sign_in=True,
    malformed_settings={
        "FACEBOOK_CLIENT_ID": "my-app",
        "FACEBOOK_CLIENT_SECRET": "not-a-hex-secret",
        "FACEBOOK_GRAPH_VERSION": "v19.0",
    },
    malformed_findings=(
        "FACEBOOK_CLIENT_ID",
        "FACEBOOK_CLIENT_SECRET",
        "FACEBOOK_GRAPH_VERSION v19.0 expired on 2026-05-21",
    ),
)
