"""The OAuth 2 authorization server every mock is made of, declared once per provider.

`OAuthServer(name, ...)` adds to `Grants` (grants.py: codes, tokens, refresh, consents) what
else RFC 6749 and 7009 leave to a provider: how clients authenticate, where parameters may
come from, which grants the token endpoint knows, how revocation behaves, the error style
(oauth_errors.py) and where the endpoints are. A mock mounts the standard endpoints
(`blueprint()`) and overrides the hooks where its provider differs, or calls the operations
from views of its own where the provider is too far from the RFCs (a REST revocation, a
Graph API).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from flask import Blueprint, Flask, redirect, request
from werkzeug.wrappers import Response

from .core import append_query, base_url, basic_credentials, json_response, no_store, pause, state
from .grants import AccessToken, AuthRequest, Code, Grants, RefreshToken, Secret
from .oauth_errors import ErrorStyle, OAuthErrors, Problem
from .pages import decide, error_page
from .settings import MockSettings

Grant = Callable[[str, dict[str, str]], Response]
# The pages a bad client or redirect URI gets (§4.1.2.1): (heading, message naming
# {client_id} or {redirect_uri}); a provider rewords them in `error_pages`.
ERROR_PAGES = dict(
    client=("Unknown client", "No client with client_id {client_id!r}."),
    redirect=(
        "Redirect URI mismatch",
        "redirect_uri={redirect_uri!r} is not registered for this client.",
    ),
)

__all__ = [
    "AccessToken",
    "AuthRequest",
    "Code",
    "Grant",
    "OAuthErrors",
    "OAuthServer",
    "Problem",
    "RefreshToken",
    "Secret",
    "redirect_back",
]


def redirect_back(
    uri: str,
    params: list[tuple[str, str]],
    state: str | None = None,
    *,
    fragment: str | None = None,
    safe: str = "",
) -> Response:
    """A 302 to the client's redirect URI with `params`, then `state` if the client sent one."""
    if state is not None:
        params = [*params, ("state", state)]
    return redirect(append_query(uri, urlencode(params, safe=safe), fragment=fragment))


@dataclass
class OAuthServer(Grants):
    """The standard authorize, token and revocation endpoints, with hooks to override."""

    _: KW_ONLY
    # Client authentication methods (RFC 6749 §2.3.1) in the order they are looked for.
    client_auth: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    # Where token and revocation requests may carry parameters: "args", "form", "json".
    params_in: tuple[str, ...] = ("form",)
    default_grant: str | None = None  # the grant a token request without grant_type gets
    refresh_with: str = "always"  # codes bring refresh tokens: always | offline_access | never
    offline_on_consent: bool = True  # offline_access brings one only on a consent screen
    revoke_auth: bool = True  # RFC 7009 §2.1: revocation authenticates the client
    revoke_unknown: str = "ok"  # RFC 7009 §2.2: 200 for an unknown token; "refuse": 400
    # Endpoint name -> path (or paths) under `prefix`; the names count requests.
    routes: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    prefix: str = ""  # default "/<name>"
    errors: ErrorStyle = field(default_factory=OAuthErrors)
    url_variable: str = ""  # the app's variable naming `base()` in `app_env`, if any
    error_pages: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # see ERROR_PAGES

    METHODS: ClassVar[dict[str, list[str]]] = dict(
        authorize=["GET", "POST"], token=["POST"], revoke=["POST"]
    )

    def __post_init__(self) -> None:
        self.prefix = self.prefix or f"/{self.name}"
        self._blueprint: Blueprint | None = None

    # --- declarations read at request time -----------------------------------------------

    @property
    def client_id(self) -> str:
        return state().settings.client_id(self.name)

    @property
    def client_secret(self) -> str:
        return state().settings.client_secret(self.name)

    @property
    def registered_redirect(self) -> str:
        return state().settings.callback(self.name)

    def base(self) -> str:
        """This provider's absolute base URL (the mock's, then `prefix`)."""
        return base_url() + self.prefix

    def url(self, endpoint: str) -> str:
        path = self.routes[endpoint]
        return self.base() + (path if isinstance(path, str) else path[0])

    def app_env(self, base: str, settings: MockSettings) -> dict[str, str]:
        """A module's `app_env`: the app's credentials, and `url_variable` set to where this
        provider is (`base`, the mock's URL, then `prefix`)."""
        urls = {self.url_variable: base + self.prefix} if self.url_variable else {}
        return settings.app_env(self.name, **urls)

    # --- mounting --------------------------------------------------------------------------

    def blueprint(self) -> Blueprint:
        """The declared `routes`, each served by the `<name>_view` method (made once)."""
        if self._blueprint is None:
            self._blueprint = Blueprint(self.name, __name__)
            for endpoint, paths in self.routes.items():
                view = getattr(self, f"{endpoint}_view")
                methods = self.METHODS.get(endpoint, ["GET"])
                for path in (paths,) if isinstance(paths, str) else paths:
                    self._blueprint.add_url_rule(path, endpoint, view, methods=methods)
        return self._blueprint

    def register(self, app: Flask) -> list[str]:
        app.register_blueprint(self.blueprint(), url_prefix=self.prefix)
        return [self.name]

    # --- clients and parameters ------------------------------------------------------------

    def params(self) -> dict[str, str]:
        """The request's parameters from where this provider reads them."""
        data: dict[str, str] = {}
        if "args" in self.params_in:
            data.update(request.args.items())
        if "form" in self.params_in:
            data.update(request.form.items())
        body = request.get_json(silent=True) if "json" in self.params_in else None
        if isinstance(body, dict):  # octokit sends JSON
            data.update({key: "" if v is None else str(v) for key, v in body.items()})
        return data

    def client_ok(self, client_id: str, secret: str) -> bool:
        return client_id == self.client_id and hmac.compare_digest(
            secret.encode(), self.client_secret.encode()
        )

    def authenticate(self, data: Mapping[str, str]) -> str:
        """The client's id, by the first declared method the request uses; else a Problem."""
        found: tuple[str, str] | None = None
        for method in self.client_auth:
            if method == "client_secret_basic":
                found = basic_credentials()
            elif data.get("client_id"):
                found = (data["client_id"], data.get("client_secret", ""))
            if found:
                break
        if not found or not found[0]:
            raise Problem("client.missing")
        if found[0] != self.client_id:
            raise Problem("client.unknown")
        if not self.client_ok(*found):
            raise Problem("client.secret")
        return found[0]

    # --- the standard endpoints and their hooks --------------------------------------------

    def authorize_view(self, **path: str) -> Response:
        """RFC 6749 §4.1.1: check the request, ask (or let the switches decide), redirect."""
        req = AuthRequest.parse(self.parse_scopes)
        refused = self.refuse_authorization(req)
        if refused is not None:
            return refused

        def approve(user: str) -> Response:
            consent_shown = self.grant_consent(req.client_id, user) or "consent" in req.prompt
            code = self.new_code(req, user, offline=self.offline(req, consent_shown))
            return self.approved(req, user, code, consent_shown)

        return decide(
            self.name,
            client_id=req.client_id,
            scopes=req.scopes,
            redirect_uri=req.redirect_uri,
            approve=approve,
            deny=lambda: self.denied(req),
        )

    def parse_scopes(self, raw: str) -> list[str]:
        return raw.split()

    def refuse_authorization(self, req: AuthRequest) -> Response | None:
        """A bad client or redirect URI gets a page, never a redirect (§4.1.2.1); any other
        bad parameter is sent back to the client."""
        for page, wrong in (
            ("client", req.client_id != self.client_id),
            ("redirect", req.redirect_uri != self.registered_redirect),
        ):
            if wrong:
                heading, text = {**ERROR_PAGES, **self.error_pages}[page]
                message = text.format(client_id=req.client_id, redirect_uri=req.redirect_uri)
                return error_page(self.name, heading, message, 400)
        problem = self.authorization_problem(req)
        if problem is None:
            return None
        error, description = problem
        query = [("error", error), ("error_description", description)]
        return redirect_back(req.redirect_uri, self.error_params(query), req.state)

    def authorization_problem(self, req: AuthRequest) -> tuple[str, str] | None:
        if req.response_type != "code":
            return "unsupported_response_type", "Only response_type=code is supported."
        if req.challenge and req.method not in ("plain", "S256"):
            return "invalid_request", "code_challenge_method must be plain or S256."
        return None

    def offline(self, req: AuthRequest, consent_shown: bool) -> bool:
        """Whether the code brings a refresh token (`refresh_with`; OIDC Core §11 for
        offline_access: only when the consent screen was shown, if `offline_on_consent`)."""
        if self.refresh_with == "offline_access":
            return "offline_access" in req.scopes and (consent_shown or not self.offline_on_consent)
        return self.refresh_with == "always"

    def callback_params(self, req: AuthRequest, code: str) -> list[tuple[str, str]]:
        return [("code", code)]

    def approved(self, req: AuthRequest, user: str, code: str, consent_shown: bool) -> Response:
        return redirect_back(req.redirect_uri, self.callback_params(req, code), req.state)

    def denied(self, req: AuthRequest) -> Response:
        error = self.error_params([("error", "access_denied")])
        return redirect_back(req.redirect_uri, error, req.state)

    def error_params(self, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """An error redirect's parameters (an OpenID provider adds `iss`: RFC 9207 2)."""
        return params

    def token_view(self, **path: str) -> Response:
        """The token endpoint: outage switches, client authentication, then the grant."""
        pause(self.name)
        status = self.switch("token_http_status")
        if status:
            return no_store(self.errors.unavailable(int(status)))
        try:
            refused = self.before_token()
            if refused is not None:
                return refused
            data = self.params()
            client_id = self.authenticate(data)
            grant_type = data.get("grant_type") or self.default_grant or ""
            grant = self.grants().get(grant_type)
            if grant is None:
                raise Problem("grant_type", grant_type)
            return no_store(grant(client_id, data))
        except Problem as problem:
            return no_store(self.errors.refuse(problem))

    def before_token(self) -> Response | None:
        """A provider's own refusal before anything is checked (e.g. a rate limit)."""
        return None

    def grants(self) -> dict[str, Grant]:
        return {"authorization_code": self.code_grant, "refresh_token": self.refresh_grant}

    def code_grant(self, client_id: str, data: dict[str, str]) -> Response:
        record = self.redeem(client_id, data)
        refresh = None
        if record.offline:
            refresh = self.new_refresh(record.user, client_id, record.scopes)
        return self.token_answer(record, client_id, refresh, new_refresh=True)

    def refresh_grant(self, client_id: str, data: dict[str, str]) -> Response:
        value = data.get("refresh_token", "")
        if self.option("refresh") == "invalid_grant":
            self.kill_refresh(value)  # the switch models a grant revoked or expired meanwhile
        record = self.use_refresh(client_id, value)
        if self.rotate_refresh:
            value = self.new_refresh(record.user, client_id, record.scopes, family=record.family)
        return self.token_answer(record, client_id, value, new_refresh=self.rotate_refresh)

    def token_answer(
        self, grant: Code | RefreshToken, client_id: str, refresh: str | None, *, new_refresh: bool
    ) -> Response:
        """RFC 6749 §5.1: a new access token for the grant's user and scopes."""
        lifetime = int(self.option("expires_in", self.access_lifetime))
        access = self.new_access(
            grant.user, client_id, grant.scopes, lifetime, refresh_token=refresh
        )
        body: dict[str, Any] = dict(access_token=access, expires_in=lifetime)
        if refresh and new_refresh:
            body["refresh_token"] = refresh
        body.update(scope=self.token_scope(grant.scopes), token_type="Bearer")
        nonce = grant.nonce if isinstance(grant, Code) else None
        body.update(self.token_extras(grant.user, grant.scopes, access, nonce))
        return json_response(body)

    def token_scope(self, scopes: list[str]) -> str:
        return " ".join(scopes)

    def token_extras(
        self, user: str, scopes: list[str], access: str, nonce: str | None
    ) -> dict[str, Any]:
        """More fields of a token answer (an OpenID provider's `id_token`)."""
        return {}

    def revoke_view(self, **path: str) -> Response:
        """RFC 7009: authenticate the client (`revoke_auth`), end the token and its pair, and
        withdraw the consent; an unknown token is done already unless `revoke_unknown`."""
        try:
            data = self.params()
            if self.revoke_auth:
                self.authenticate(data)
            value = data.get("token", "")
            if not value:
                raise Problem("token.missing")
            record = self.revoke(value)
            if record is None and self.revoke_unknown == "refuse":
                raise Problem("token.unknown")
        except Problem as problem:
            return self.errors.refuse(problem)
        if record is not None:
            self.withdraw_consent(record.client_id, record.user)
        return json_response({})
