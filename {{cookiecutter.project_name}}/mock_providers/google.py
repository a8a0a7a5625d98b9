"""Mock Google: OpenID Connect the way accounts.google.com and oauth2.googleapis.com do it.

Quirks kept on purpose: a bad client or redirect URI gets an error *page* (never a redirect
back), the callback carries the expanded scope list plus authuser/prompt, a refresh token
comes only with access_type=offline on a consent screen, refresh never rotates it, a refresh
token refused once stays refused, revoking withdraws the consent (the next sign-in shows the
consent screen and brings a refresh token again), the revoke endpoint answers GET with 404,
and the certs (JWKS) carry Google's Cache-Control max-age.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

from flask import Blueprint, Flask, Response, abort, redirect, request
from joserfc import jwt

from .core import (
    BASE62,
    MockState,
    append_query,
    b64url,
    base_url,
    basic_credentials,
    bearer_token,
    json_response,
    no_store,
    pause,
    pkce_ok,
    random_text,
    state,
)
from .pages import avatar, decide, error_page
from .settings import MockSettings

NAME = "google"
TITLE = "Google"
ISSUER = "https://accounts.google.com"
CODE_LIFETIME = 600
ID_TOKEN_LIFETIME = 3600
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
PROFILE_SCOPE = "https://www.googleapis.com/auth/userinfo.profile"
SCOPE_ALIASES = {EMAIL_SCOPE: "email", PROFILE_SCOPE: "profile"}

PERSONAS: dict[str, dict[str, Any]] = {
    "ada": dict(
        sub="104612381937451032001",
        email="ada.lovelace@gmail.com",
        name="Ada Lovelace",
        given_name="Ada",
        family_name="Lovelace",
        hd=None,
    ),
    "grace": dict(
        sub="117293840192837465002",
        email="grace@example.com",
        name="Grace Hopper",
        given_name="Grace",
        family_name="Hopper",
        hd="example.com",
    ),
}
PERSONA_LABELS = {
    "ada": "Ada Lovelace, ada.lovelace@gmail.com (personal Gmail account, no hd)",
    "grace": "Grace Hopper, grace@example.com (Google Workspace, hd=example.com)",
}

SWITCHES: dict[str, Any] = dict(
    iss="https",
    email_verified=True,
    iat_skew=0,
    exp_offset=ID_TOKEN_LIFETIME,
    aud="client_id",
    azp="client_id",
    hd=None,
    kid="published",
    alg="RS256",
    nonce="echo",
    id_token=True,
    refresh="ok",
    userinfo="ok",
    expires_in=3599,
    certs_max_age=21600,
)
CHOICES: dict[str, tuple[Any, ...]] = dict(
    email_verified=(True, "true", False),
    kid=("published", "unpublished", "withdrawn"),
    alg=("RS256", "none", "HS256"),
    nonce=("echo", "wrong", "omit"),
    id_token=(True, False),
    refresh=("ok", "invalid_grant"),
    userinfo=("ok", "quota", "unauthorized"),
)


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    user: str
    scopes: list[str]
    nonce: str | None
    challenge: str | None
    method: str
    with_refresh: bool
    created: float = field(default_factory=time.time)
    used: bool = False


@dataclass
class AccessToken:
    user: str
    client_id: str
    scopes: list[str]
    expires_at: float
    refresh_token: str | None


@dataclass
class RefreshToken:
    user: str
    client_id: str
    scopes: list[str]
    access_tokens: set[str] = field(default_factory=set)


bp = Blueprint(NAME, __name__)


def register(app: Flask) -> list[str]:
    app.register_blueprint(bp, url_prefix="/google")
    return [NAME]


def app_env(base: str, settings: MockSettings) -> dict[str, str]:
    return {
        "GOOGLE_CLIENT_ID": settings.google_client_id,
        "GOOGLE_CLIENT_SECRET": settings.google_client_secret,
        "GOOGLE_SERVER_METADATA_URL": f"{base}/google/.well-known/openid-configuration",
    }


# --- helpers ------------------------------------------------------------------------------


def short_scopes(scopes: list[str]) -> set[str]:
    return {SCOPE_ALIASES.get(scope, scope) for scope in scopes}


def callback_scope(scopes: list[str]) -> str:
    """The callback's `scope`: short names, then their URLs, then openid, as Google sends it."""
    wanted = short_scopes(scopes)
    out = [name for name in ("email", "profile") if name in wanted]
    out += [
        url for url, name in ((PROFILE_SCOPE, "profile"), (EMAIL_SCOPE, "email")) if name in wanted
    ]
    out += [s for s in scopes if s not in ("openid", "email", "profile") and s not in SCOPE_ALIASES]
    if "openid" in wanted:
        out.append("openid")
    return " ".join(out)


def token_scope(scopes: list[str]) -> str:
    """The token response's `scope`: openid and full URLs only."""
    wanted = short_scopes(scopes)
    out = ["openid"] if "openid" in wanted else []
    out += [
        url for url, name in ((EMAIL_SCOPE, "email"), (PROFILE_SCOPE, "profile")) if name in wanted
    ]
    out += [s for s in scopes if s not in ("openid", "email", "profile") and s not in SCOPE_ALIASES]
    return " ".join(out)


def picture_url(persona: dict[str, Any]) -> str:
    return f"{base_url()}/google/a/{persona['sub']}=s96-c"


def oauth_error(status: int, error: str, description: str) -> Response:
    return no_store(json_response(dict(error=error, error_description=description), status))


def signed(header: dict[str, Any], claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT built by hand (the forged token the `alg="HS256"` switch asks for)."""
    compact = json.dumps(header, separators=(",", ":")).encode()
    payload = json.dumps(claims, separators=(",", ":")).encode()
    signing_input = f"{b64url(compact)}.{b64url(payload)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def unsigned(claims: dict[str, Any]) -> str:
    header = json.dumps(dict(alg="none", typ="JWT"), separators=(",", ":")).encode()
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return f"{b64url(header)}.{b64url(payload)}."


def id_token(mock: MockState, user: str, scopes: list[str], access: str, nonce: str | None) -> str:
    """Google's ID token for `user`, bent by the ID-token switches."""
    with mock.lock:
        sw = dict(mock.switches[NAME])
    settings = mock.settings
    persona = PERSONAS[user]
    wanted = short_scopes(scopes)
    issued = int(time.time()) + int(sw["iat_skew"]) + int(sw["clock_skew"])
    iss = dict(https=ISSUER, bare="accounts.google.com").get(sw["iss"], sw["iss"])
    client_id = settings.google_client_id
    claims: dict[str, Any] = dict(iss=iss)
    if sw["azp"] is not None:
        claims["azp"] = client_id if sw["azp"] == "client_id" else sw["azp"]
    claims["aud"] = client_id if sw["aud"] == "client_id" else sw["aud"]
    claims["sub"] = persona["sub"]
    hd = persona["hd"] if sw["hd"] is None else sw["hd"]
    if hd:
        claims["hd"] = hd
    if "email" in wanted:
        claims["email"] = persona["email"]
        claims["email_verified"] = sw["email_verified"]
    claims["at_hash"] = b64url(hashlib.sha256(access.encode()).digest()[:16])
    if nonce and sw["nonce"] != "omit":
        claims["nonce"] = nonce if sw["nonce"] == "echo" else "wrong-" + random_text(16)
    if "profile" in wanted:
        claims["name"] = persona["name"]
        claims["picture"] = picture_url(persona)
        claims["given_name"] = persona["given_name"]
        claims["family_name"] = persona["family_name"]
    claims["iat"] = issued
    claims["exp"] = issued + int(sw["exp_offset"])
    if sw["alg"] == "none":
        return unsigned(claims)
    key = dict(unpublished=mock.keys.unpublished, withdrawn=mock.keys.withdrawn).get(
        sw["kid"], mock.keys.current
    )
    header = dict(alg=sw["alg"], kid=key.kid, typ="JWT")
    if sw["alg"] == "HS256":
        return signed(header, claims, settings.google_client_secret)
    return jwt.encode(header, claims, key)


def issue_tokens(
    mock: MockState, user: str, client_id: str, scopes: list[str], refresh_token: str | None
) -> tuple[str, int]:
    """A new access token, linked to its refresh token so revoking either kills both."""
    store = mock.store(NAME)
    lifetime = int(mock.switch(NAME, "expires_in"))
    access = mock.mint("ya29.a0" + random_text(160, BASE62 + "-_"))
    with mock.lock:
        store.tokens[access] = AccessToken(
            user, client_id, scopes, time.time() + lifetime, refresh_token
        )
        if refresh_token:
            store.refresh_tokens[refresh_token].access_tokens.add(access)
    return access, lifetime


def kill_refresh_token(mock: MockState, refresh_token: str) -> None:
    store = mock.store(NAME)
    with mock.lock:
        record = store.refresh_tokens.pop(refresh_token, None)
        for access in record.access_tokens if record else ():
            store.tokens.pop(access, None)


def withdraw_consent(mock: MockState, client_id: str, user: str) -> None:
    """What revoking does at Google: the app loses its access, so the next authorization
    shows the consent screen again and, with access_type=offline, issues a refresh token.
    (Refusing a dead refresh token at refresh does not: the consent stays.)"""
    with mock.lock:
        mock.store(NAME).consents.discard((client_id, user))


# --- endpoints ----------------------------------------------------------------------------


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    """The real document, with every endpoint pointing at this mock."""
    base = f"{base_url()}/google"
    document = dict(
        issuer=ISSUER,
        authorization_endpoint=f"{base}/o/oauth2/v2/auth",
        token_endpoint=f"{base}/token",
        userinfo_endpoint=f"{base}/v1/userinfo",
        revocation_endpoint=f"{base}/revoke",
        jwks_uri=f"{base}/oauth2/v3/certs",
        response_types_supported=[
            "code",
            "token",
            "id_token",
            "code token",
            "code id_token",
            "token id_token",
            "code token id_token",
            "none",
        ],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=["RS256"],
        scopes_supported=["openid", "email", "profile"],
        token_endpoint_auth_methods_supported=["client_secret_post", "client_secret_basic"],
        claims_supported=[
            "aud",
            "email",
            "email_verified",
            "exp",
            "family_name",
            "given_name",
            "iat",
            "iss",
            "name",
            "picture",
            "sub",
        ],
        code_challenge_methods_supported=["plain", "S256"],
        grant_types_supported=[
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
    )
    return json_response(document, headers={"Cache-Control": "public, max-age=3600"})


@bp.get("/oauth2/v3/certs")
def certs() -> Response:
    """The JWKS, cacheable for `certs_max_age` seconds, with Google's header."""
    max_age = int(state().switch(NAME, "certs_max_age"))
    return json_response(
        state().keys.jwks(),
        headers={
            "Cache-Control": f"public, max-age={max_age}, must-revalidate, no-transform",
            "Expires": formatdate(time.time() + max_age, usegmt=True),
        },
    )


@bp.route("/o/oauth2/v2/auth", methods=["GET", "POST"])
def authorize() -> Response:
    mock = state()
    settings = mock.settings
    args = request.args
    client_id = args.get("client_id", "")
    redirect_uri = args.get("redirect_uri", "")
    if client_id != settings.google_client_id:
        return error_page(
            NAME,
            "Access blocked: Authorization Error",
            f"The OAuth client was not found. Error 401: invalid_client (client_id={client_id!r})",
            401,
        )
    if redirect_uri != settings.callback(NAME):
        return error_page(
            NAME,
            "Access blocked: This app's request is invalid",
            "Error 400: redirect_uri_mismatch. You can't sign in because this app sent an "
            f"invalid request. redirect_uri={redirect_uri!r} is not registered for this client "
            f"(registered: {settings.callback(NAME)!r}).",
            400,
        )
    problem = None
    scopes = args.get("scope", "").split()
    method = args.get("code_challenge_method", "plain")
    if args.get("response_type") != "code":
        problem = "Required parameter is missing or unsupported: response_type"
    elif not scopes:
        problem = "Missing required parameter: scope"
    elif args.get("code_challenge") and method not in ("plain", "S256"):
        problem = "Invalid code_challenge_method"
    if problem:
        return error_page(
            NAME,
            "Access blocked: Authorization Error",
            f"Error 400: invalid_request. {problem}",
            400,
        )
    client_state = args.get("state")

    def approve(user: str) -> Response:
        store = mock.store(NAME)
        with mock.lock:
            first = (client_id, user) not in store.consents
            store.consents.add((client_id, user))
        consent_shown = first or "consent" in args.get("prompt", "").split()
        code = mock.mint("4/0A" + random_text(90, BASE62 + "-_"))
        with mock.lock:
            store.codes[code] = Code(
                client_id=client_id,
                redirect_uri=redirect_uri,
                user=user,
                scopes=scopes,
                nonce=args.get("nonce"),
                challenge=args.get("code_challenge"),
                method=method,
                with_refresh=args.get("access_type") == "offline" and consent_shown,
            )
        query = [f"state={quote_plus(client_state)}"] if client_state is not None else []
        query += [
            f"code={quote(code, safe='')}",
            f"scope={quote_plus(callback_scope(scopes), safe=':/')}",
            "authuser=0",
        ]
        if PERSONAS[user]["hd"]:
            query.append(f"hd={quote_plus(PERSONAS[user]['hd'])}")
        query.append(f"prompt={'consent' if consent_shown else 'none'}")
        return redirect(append_query(redirect_uri, "&".join(query)))

    def deny() -> Response:
        query = [("error", "access_denied")]
        if client_state is not None:
            query.append(("state", client_state))
        return redirect(append_query(redirect_uri, urlencode(query)))

    return decide(
        NAME,
        client_id=client_id,
        scopes=scopes,
        redirect_uri=redirect_uri,
        approve=approve,
        deny=deny,
    )


@bp.post("/token")
def token() -> Response:
    mock = state()
    pause(NAME)
    status = mock.switch(NAME, "token_http_status")
    if status:
        return oauth_error(int(status), "internal_failure", "Backend Error")
    form = request.form
    client_id, secret = basic_credentials() or (
        form.get("client_id", ""),
        form.get("client_secret", ""),
    )
    if not client_id:
        return oauth_error(400, "invalid_request", "Could not determine client ID from request.")
    if client_id != mock.settings.google_client_id:
        return oauth_error(401, "invalid_client", "The OAuth client was not found.")
    if not hmac.compare_digest(secret.encode(), mock.settings.google_client_secret.encode()):
        return oauth_error(401, "invalid_client", "Unauthorized")
    grant_type = form.get("grant_type", "")
    if grant_type == "authorization_code":
        return exchange_code(mock, client_id)
    if grant_type == "refresh_token":
        return refresh(mock, client_id)
    return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")


def exchange_code(mock: MockState, client_id: str) -> Response:
    form = request.form
    store = mock.store(NAME)
    with mock.lock:
        record: Code | None = store.codes.get(form.get("code", ""))
        if (
            record is None
            or record.used
            or record.client_id != client_id
            or time.time() - record.created > CODE_LIFETIME
        ):
            return oauth_error(400, "invalid_grant", "Bad Request")
        record.used = True
    if form.get("redirect_uri") != record.redirect_uri:
        return oauth_error(400, "redirect_uri_mismatch", "Bad Request")
    if record.challenge:
        verifier = form.get("code_verifier")
        if not verifier:
            return oauth_error(400, "invalid_grant", "Missing code verifier.")
        if not pkce_ok(record.challenge, record.method, verifier):
            return oauth_error(400, "invalid_grant", "Invalid code verifier.")
    refresh_token = None
    if record.with_refresh:
        refresh_token = mock.mint("1//0g" + random_text(100, BASE62 + "-_"))
        with mock.lock:
            store.refresh_tokens[refresh_token] = RefreshToken(
                record.user, client_id, record.scopes
            )
    access, lifetime = issue_tokens(mock, record.user, client_id, record.scopes, refresh_token)
    body: dict[str, Any] = dict(access_token=access, expires_in=lifetime)
    if refresh_token:
        body["refresh_token"] = refresh_token
    body.update(scope=token_scope(record.scopes), token_type="Bearer")
    if mock.switch(NAME, "id_token") and "openid" in record.scopes:
        body["id_token"] = mock.mint(
            id_token(mock, record.user, record.scopes, access, record.nonce)
        )
    return no_store(json_response(body))


def refresh(mock: MockState, client_id: str) -> Response:
    """Refresh never returns a new refresh token; a dead one gives invalid_grant."""
    refresh_token = request.form.get("refresh_token", "")
    store = mock.store(NAME)
    with mock.lock:
        record: RefreshToken | None = store.refresh_tokens.get(refresh_token)
    if mock.switch(NAME, "refresh") == "invalid_grant" and record is not None:
        kill_refresh_token(mock, refresh_token)  # the switch models a revoked grant
        record = None
    if record is None or record.client_id != client_id:
        return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
    access, lifetime = issue_tokens(mock, record.user, client_id, record.scopes, refresh_token)
    body: dict[str, Any] = dict(
        access_token=access,
        expires_in=lifetime,
        scope=token_scope(record.scopes),
        token_type="Bearer",
    )
    if mock.switch(NAME, "id_token") and "openid" in record.scopes:
        body["id_token"] = mock.mint(id_token(mock, record.user, record.scopes, access, None))
    return no_store(json_response(body))


@bp.route("/v1/userinfo", methods=["GET", "POST"])
@bp.route("/oauth2/v3/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    mock = state()
    pause(NAME)
    mode = mock.switch(NAME, "userinfo")
    if mode == "quota":
        message = (
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of "
            "service 'openidconnect.googleapis.com'."
        )
        error = dict(code=429, message=message, status="RESOURCE_EXHAUSTED")
        return json_response(dict(error=error), 429)
    access = bearer_token() or request.args.get("access_token", "")
    with mock.lock:
        record: AccessToken | None = mock.store(NAME).tokens.get(access)
    if mode == "unauthorized" or record is None or record.expires_at < time.time():
        return json_response(
            dict(error="invalid_request", error_description="Invalid Credentials"),
            401,
            headers={
                "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                'error="invalid_token"'
            },
        )
    persona = PERSONAS[record.user]
    wanted = short_scopes(record.scopes)
    body: dict[str, Any] = dict(sub=persona["sub"])
    if "profile" in wanted:
        body.update(
            name=persona["name"],
            given_name=persona["given_name"],
            family_name=persona["family_name"],
            picture=picture_url(persona),
        )
    if "email" in wanted:
        body.update(email=persona["email"], email_verified=mock.switch(NAME, "email_verified"))
    if persona["hd"]:
        body["hd"] = persona["hd"]
    return json_response(body)


@bp.route("/revoke", methods=["GET", "POST"])
def revoke() -> Response:
    """POST only, like oauth2.googleapis.com/revoke (a GET there is a plain 404)."""
    if request.method != "POST":
        abort(404)
    mock = state()
    store = mock.store(NAME)
    token_value = request.form.get("token") or request.args.get("token", "")
    with mock.lock:
        access: AccessToken | None = store.tokens.get(token_value)
        refresh: RefreshToken | None = store.refresh_tokens.get(token_value)
        if access is not None and access.expires_at >= time.time():
            store.tokens.pop(token_value)
            if access.refresh_token:
                kill_refresh_token(mock, access.refresh_token)
            withdraw_consent(mock, access.client_id, access.user)
        elif refresh is not None:
            kill_refresh_token(mock, token_value)
            withdraw_consent(mock, refresh.client_id, refresh.user)
        else:
            return oauth_error(400, "invalid_token", "Token expired or revoked")
    return json_response({})


@bp.get("/a/<path:name>")
def picture(name: str) -> Response:
    sub = name.split("=")[0]
    persona = next((p for p in PERSONAS.values() if p["sub"] == sub), None)
    initials = "".join(w[0] for w in persona["name"].split()) if persona else "?"
    return avatar(sub, initials)


# --- what the cross-provider tests need to know (mock_providers/facts.py) -----------------

from .facts import (  # noqa: E402 - appended to the module on purpose: see facts.py
    Env,
    Grant,
    MockControl,
    MockFacts,
    RateLimit,
    RefreshFacts,
    expect,
    oidc_endpoint,
    refresh_at,
    revoked_at_endpoint,
    userinfo_takes,
)

FACT_DISCOVERY = "GOOGLE_SERVER_METADATA_URL"


def fact_unverified_email(control: MockControl) -> str:
    control.switch(NAME, email_verified=False)
    return PERSONAS["ada"]["email"]


def fact_kill_refresh_token(control: MockControl, env: Env, grant: Grant) -> None:
    """Google refuses the refresh token (a grant revoked by Google), once and for good; the
    consent stays, so only a consent screen brings a new one."""
    control.switch(NAME, refresh="invalid_grant")
    try:
        url = oidc_endpoint(env, FACT_DISCOVERY, "token_endpoint")
        refused = refresh_at(url, env, "GOOGLE", grant.refresh_token)
    finally:
        control.switch(NAME, refresh="ok")
    expect(refused, 400)


FACTS = MockFacts(
    name=NAME,
    other_persona="grace",
    email=PERSONAS["ada"]["email"],
    email_verified=True,
    unverified_email=fact_unverified_email,
    profile_endpoint="userinfo",
    revoke_endpoint="revoke",
    login_calls=1,
    api_variable=FACT_DISCOVERY,
    api_path="/.well-known/openid-configuration",
    issuer="https://accounts.google.com",
    refresh=RefreshFacts(
        expiring={"expires_in": 60},
        long_lived={"expires_in": 3599},
        kill=fact_kill_refresh_token,
        reconsent={"access_type": "offline", "prompt": "consent"},
    ),
    most_tokens={"expires_in": 60},
    token_works=userinfo_takes(FACT_DISCOVERY),
    remove_app=revoked_at_endpoint(FACT_DISCOVERY, "GOOGLE"),  # as "remove access" does
    token_refused={"userinfo": "unauthorized"},
    rate_limits=(RateLimit("quota", {"userinfo": "quota"}, {"userinfo": "ok"}, (1, 3600)),),
    malformed_settings={"GOOGLE_CLIENT_ID": "123456789012-abc.example.com"},
    malformed_findings=("GOOGLE_CLIENT_ID",),
)
