"""Mock GitHub: OAuth Apps and GitHub App user tokens, on github.com and on an Enterprise Server.

Quirks kept on purpose: every token-endpoint answer is HTTP 200 (errors included), the body
is form-encoded unless the client asks for JSON, scopes come back comma-separated, the REST
API refuses requests without a User-Agent, a private email is null in /user, a public one
may be unverified, rate limits answer 403 or 429 (a secondary one with `retry-after` only
sometimes), an expired or unknown token cannot delete a grant (404), and a wrong
redirect_uri is sent back to the *registered* callback. The same blueprint is mounted twice:
`/github` (API under `/github/api`) and `/ghes` (Enterprise Server layout, API under `/api/v3`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .core import (
    MockState,
    base_url,
    basic_credentials,
    bearer_token,
    json_response,
    no_store,
    pause,
    random_text,
    same_origin_path_under,
    state,
)
from .facts import (
    AppGrant,
    Env,
    MockControl,
    MockFacts,
    RateLimit,
    RefreshFacts,
    bearer_works,
    call,
    expect,
    refresh_at,
)
from .oauth import AccessToken, AuthRequest, OAuthServer, Problem, Secret, redirect_back
from .pages import decide, error_page, persona_avatar, persona_with
from .settings import MockSettings

NAME = "github"
TITLE = "GitHub"
# The app's credentials here (MockSettings.credentials), shaped like real ones.
CLIENT = ("Ov23liMockGitHub0001", "mockgithubclientsecret00000000000000000001")
APP_TOKEN_LIFETIME = 28800
REFRESH_TOKEN_LIFETIME = 15811200
RATE_LIMIT = 5000
RATE_LIMITS_DOC = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID."
)
HEX = "0123456789ABCDEF"
OAUTH_APP_TOKEN = Secret("gho_", 36)
APP_USER_TOKEN = Secret("ghu_", 36)
APP_REFRESH_TOKEN = Secret("ghr_", 76)
# blueprint name -> (web prefix, API prefix)
LAYOUTS = {"github": ("/github", "/github/api"), "ghes": ("/ghes", "/ghes/api/v3")}

AUTH_ERRORS_DOC = (
    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/"
)
TOKEN_ERRORS_DOC = (
    "https://docs.github.com/apps/managing-oauth-apps/"
    "troubleshooting-oauth-app-access-token-request-errors/"
)
AUTHORIZE_ERRORS = {
    "redirect_uri_mismatch": (
        "The redirect_uri MUST match the registered callback URL for this application.",
        "#redirect-uri-mismatch",
    ),
    "access_denied": ("The user has denied your application access.", "#access-denied"),
    "application_suspended": (
        "Your application has been suspended. Contact support@github.com.",
        "#application-suspended",
    ),
}
TOKEN_ERRORS = {
    "incorrect_client_credentials": (
        "The client_id and/or client_secret passed are incorrect.",
        "#incorrect-client-credentials",
    ),
    "redirect_uri_mismatch": (
        "The redirect_uri MUST match the registered callback URL for this application.",
        "#redirect-uri-mismatch2",
    ),
    "bad_verification_code": ("The code passed is incorrect or expired.", "#bad-verification-code"),
    "unverified_user_email": (
        "The user must have a verified primary email.",
        "#unverified-user-email",
    ),
    "bad_refresh_token": (
        "The refresh token passed is incorrect or expired.",
        "#bad-verification-code",
    ),
}

PERSONAS: dict[str, dict[str, Any]] = {
    "ada": dict(
        id=583231,
        login="ada",
        name="Ada Lovelace",
        email="ada@example.com",
        emails=[dict(email="ada@example.com", primary=True, verified=True, visibility="public")],
    ),
    "private": dict(
        id=1123581,
        login="private-pat",
        name="Pat Private",
        email=None,
        emails=[
            dict(email="pat@example.com", primary=True, verified=True, visibility="private"),
            dict(email="pat-old@example.org", primary=False, verified=False, visibility=None),
        ],
    ),
    "noname": dict(
        id=2718281,
        login="noname",
        name=None,
        email="noname@example.com",
        emails=[dict(email="noname@example.com", primary=True, verified=True, visibility="public")],
    ),
}
PERSONA_LABELS = {
    "ada": "Ada Lovelace, public email ada@example.com (id 583231)",
    "private": "Pat Private, email hidden: null in /user, only in /user/emails",
    "noname": "no display name (name is null; use the login 'noname')",
}

SWITCHES: dict[str, Any] = dict(
    suspended=False,
    token_error=None,
    emails="ok",
    app_mode=False,
    install_callback=False,
    rate_limit=None,
    rate_limit_status=403,
    rate_limit_retry_after=True,
    rate_limit_on="api",
    require_pkce=False,
    expires_in=APP_TOKEN_LIFETIME,
    refresh_token_expires_in=REFRESH_TOKEN_LIFETIME,
    user_object="ok",
    public_email="verified",
)
CHOICES: dict[str, tuple[Any, ...]] = dict(
    suspended=(True, False),
    token_error=(None, *TOKEN_ERRORS),
    emails=("ok", "404", "403", "no_primary", "empty"),
    app_mode=(True, False),
    install_callback=(True, False),
    rate_limit=(None, "primary", "secondary"),
    rate_limit_status=(403, 429),
    rate_limit_retry_after=(True, False),
    rate_limit_on=("api", "user", "emails", "token"),
    require_pkce=(True, False),
    user_object=("ok", "no_id", "null_id", "empty_id", "list", "odd_fields"),
    public_email=("verified", "bounced"),
)


# Token-endpoint refusals (see oauth.Problem) as GitHub's TOKEN_ERRORS.
REFUSALS = {
    "client": "incorrect_client_credentials",
    "code": "bad_verification_code",
    "code.redirect": "redirect_uri_mismatch",
    "pkce": "bad_verification_code",
    "grant_type": "bad_verification_code",
    "refresh": "bad_refresh_token",
}


class TokenErrors:
    """GitHub's token endpoint: HTTP 200 with an error body, or its Unicorn page."""

    def refuse(self, problem: Problem) -> BaseResponse:
        return token_error(problem.pick(REFUSALS))

    def unavailable(self, status: int) -> BaseResponse:
        return Response("<h1>Unicorn!</h1> This page is taking too long to load.", status)


class GitHub(OAuthServer):
    """The token endpoint's own rules: a rate limit of its own, forced errors, two token kinds."""

    def before_token(self) -> BaseResponse | None:
        limited = rate_limited(state(), "token", None)
        if limited is not None:
            return limited
        forced = self.switch("token_error")
        return token_error(forced) if forced else None

    def code_grant(self, client_id: str, data: dict[str, str]) -> BaseResponse:
        record = self.redeem(client_id, data, require_pkce=bool(self.switch("require_pkce")))
        app_mode = bool(self.switch("app_mode"))
        return token_reply(issue_tokens(record.user, client_id, record.scopes, app_mode))

    def refresh_grant(self, client_id: str, data: dict[str, str]) -> BaseResponse:
        """Rotation: the used refresh token and its access token die; reuse is an error.
        Refresh tokens exist only for GitHub App user tokens, so the new pair is one too."""
        record = self.use_refresh(client_id, data.get("refresh_token", ""))
        return token_reply(issue_tokens(record.user, client_id, [], app_mode=True))


SERVER = GitHub(
    NAME,
    code=Secret("", 20, "0123456789abcdef"),
    client_auth=("client_secret_post", "client_secret_basic"),
    params_in=("args", "form", "json"),
    default_grant="authorization_code",
    redirect_check="if_sent",
    rotate_refresh=True,
    errors=TokenErrors(),
)


def api_root() -> Response:
    """The REST API root answers without a token, as api.github.com does."""
    return json_response({"current_user_url": f"{base_url()}/github/api/user"})


def make_blueprint(name: str) -> Blueprint:
    """The GitHub web and API endpoints, laid out as github.com or as an Enterprise Server."""
    web, api = LAYOUTS[name]
    api_path = api.removeprefix(web)
    bp = Blueprint(name, __name__)
    bp.add_url_rule("/login/oauth/authorize", "authorize", authorize, methods=["GET", "POST"])
    bp.add_url_rule("/login/oauth/access_token", "token", SERVER.token_view, methods=["POST"])
    bp.add_url_rule(f"{api_path}/", "api_root", api_root)
    bp.add_url_rule(f"{api_path}/user", "user", user)
    bp.add_url_rule(f"{api_path}/user/emails", "emails", emails)
    bp.add_url_rule(
        f"{api_path}/applications/<client_id>/grant",
        "revoke_grant",
        revoke_grant,
        methods=["DELETE"],
    )
    bp.add_url_rule(
        f"{api_path}/applications/<client_id>/token",
        "revoke_token",
        revoke_token,
        methods=["DELETE"],
    )
    bp.add_url_rule("/avatars/u/<int:user_id>", "avatar", avatar_image)
    # Where a person revokes an app: OAuth Apps, and GitHub Apps' user authorizations.
    for path in ("/settings/applications", "/settings/apps/authorizations"):
        bp.add_url_rule(path, "authorizations", authorizations, methods=["GET", "POST"])
    return bp


def register(app: Flask) -> list[str]:
    for name, (web, _api) in LAYOUTS.items():
        app.register_blueprint(make_blueprint(name), url_prefix=web)
    return list(LAYOUTS)


def app_env(base: str, settings: MockSettings) -> dict[str, str]:
    return {
        "GITHUB_CLIENT_ID": settings.client_id(NAME),
        "GITHUB_CLIENT_SECRET": settings.client_secret(NAME),
        "GITHUB_URL": f"{base}/github",
        "GITHUB_API_URL": f"{base}/github/api",
    }


# --- helpers ------------------------------------------------------------------------------


def layout() -> tuple[str, str]:
    """Absolute web and API base URLs for the layout this request came in on."""
    web, api = LAYOUTS[request.blueprint or NAME]
    return base_url() + web, base_url() + api


def parse_scopes(raw: str) -> list[str]:
    """GitHub documents spaces but accepts commas too; `user` swallows its sub-scopes."""
    scopes: list[str] = []
    for scope in raw.replace(",", " ").split():
        if scope not in scopes:
            scopes.append(scope)
    if "user" in scopes:
        scopes = [s for s in scopes if s not in ("read:user", "user:email", "user:follow")]
    return scopes


def authorize_error(redirect_uri: str, error: str, client_state: str | None) -> BaseResponse:
    description, anchor = AUTHORIZE_ERRORS[error]
    query = [("error", error), ("error_description", description)]
    query.append(("error_uri", AUTH_ERRORS_DOC + anchor))
    return redirect_back(redirect_uri, query, client_state)


def token_reply(body: dict[str, Any]) -> Response:
    """Always 200; JSON only when asked for, else GitHub's form-encoded default."""
    if "application/json" in request.headers.get("Accept", ""):
        return no_store(json_response(body))
    encoded = urlencode({k: "" if v is None else v for k, v in body.items()})
    return no_store(Response(encoded, mimetype="application/x-www-form-urlencoded"))


def token_error(error: str) -> Response:
    description, anchor = TOKEN_ERRORS[error]
    return token_reply(
        dict(error=error, error_description=description, error_uri=TOKEN_ERRORS_DOC + anchor)
    )


def api_error(status: int, message: str, doc: str = "https://docs.github.com/rest") -> Response:
    body = dict(message=message, documentation_url=doc, status=str(status))
    if status == 401:
        body.pop("status")
    return json_response(body, status, headers=common_api_headers())


def common_api_headers() -> dict[str, str]:
    return {
        "X-GitHub-Media-Type": "github.v3; format=json",
        "X-GitHub-Api-Version-Selected": "2022-11-28",
        "X-GitHub-Request-Id": f"{random_text(4, HEX)}:{random_text(8, HEX)}",
    }


def rate_headers(mock: MockState, user: str) -> dict[str, str]:
    """Count one call against the user's hourly budget, as the x-ratelimit-* headers show."""
    now = int(time.time())
    with mock.lock:
        windows = mock.store(NAME).extra.setdefault("rate", {})
        window = windows.get(user)
        if window is None or window["reset"] <= now:
            window = windows[user] = dict(used=0, reset=now + 3600)
        window["used"] += 1
        used, reset = window["used"], window["reset"]
    return {
        "x-ratelimit-limit": str(RATE_LIMIT),
        "x-ratelimit-remaining": str(max(RATE_LIMIT - used, 0)),
        "x-ratelimit-used": str(used),
        "x-ratelimit-reset": str(reset),
        "x-ratelimit-resource": "core",
    }


def rate_limited(mock: MockState, endpoint: str, user: str | None) -> Response | None:
    """The `rate_limit*` switches: `endpoint` answers as GitHub does over a rate limit.

    Primary (REST API): 403 or 429 with `x-ratelimit-remaining: 0` and a future reset.
    Secondary: 403 or 429 whose message says so; `retry-after` only "if present" (the
    `rate_limit_retry_after` switch), while the usual headers still show budget left. OAuth
    token requests have a secondary limit of their own (RATE_LIMITS_DOC).
    """
    kind, on = mock.switch(NAME, "rate_limit"), mock.switch(NAME, "rate_limit_on")
    if kind is None or on not in (endpoint, "api" if endpoint != "token" else None):
        return None
    status = int(mock.switch(NAME, "rate_limit_status"))
    headers = common_api_headers()
    if endpoint != "token":
        headers.update(rate_headers(mock, user or "app"))
    if kind == "primary" and endpoint != "token":
        headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-used": str(RATE_LIMIT)})
        who = f"user ID {PERSONAS[user]['id']}" if user else "this app"
        message = (
            f"API rate limit exceeded for {who}. If you reach out to GitHub Support for "
            "help, please include the request ID."
        )
        doc = RATE_LIMITS_DOC
    else:
        message, doc = SECONDARY_MESSAGE, f"{RATE_LIMITS_DOC}#about-secondary-rate-limits"
        if mock.switch(NAME, "rate_limit_retry_after"):
            headers["retry-after"] = "60"
    body = dict(message=message, documentation_url=doc, status=str(status))
    return json_response(body, status, headers=headers)


def api_auth(mock: MockState, endpoint: str) -> AccessToken | Response:
    """The REST API's gatekeeping: User-Agent, then credentials, then rate limits."""
    pause(NAME)
    if not request.headers.get("User-Agent"):
        return Response(
            "Request forbidden by administrative rules. Please make sure your request has a "
            "User-Agent header (https://docs.github.com/rest/overview/resources-in-the-rest-api"
            "#user-agent-required). Check https://developer.github.com for other possible causes.",
            403,
            mimetype="text/plain",
        )
    value = bearer_token(("bearer", "token"))
    if value is None:
        return api_error(
            401,
            "Requires authentication",
            "https://docs.github.com/rest/users/users#get-the-authenticated-user",
        )
    record = SERVER.live_access(value)
    if record is None:
        return api_error(401, "Bad credentials")
    limited = rate_limited(mock, endpoint, record.user)
    return record if limited is None else limited


def api_reply(mock: MockState, record: AccessToken, body: Any, accepted_scopes: str) -> Response:
    headers = common_api_headers()
    headers.update(rate_headers(mock, record.user))
    headers["X-OAuth-Scopes"] = "" if record.extra["app_mode"] else ", ".join(record.scopes)
    headers["X-Accepted-OAuth-Scopes"] = accepted_scopes
    return json_response(body, headers=headers)


def issue_tokens(user: str, client_id: str, scopes: list[str], app_mode: bool) -> dict[str, Any]:
    """OAuth-App tokens (gho_, never expire) or GitHub-App user tokens (ghu_ + ghr_)."""
    if not app_mode:
        access = SERVER.new_access(
            user, client_id, scopes, None, secret=OAUTH_APP_TOKEN, app_mode=False
        )
        return dict(access_token=access, scope=",".join(scopes), token_type="bearer")
    lifetime = int(SERVER.switch("expires_in"))
    refresh_lifetime = int(SERVER.switch("refresh_token_expires_in"))
    refresh_token = SERVER.new_refresh(
        user, client_id, [], lifetime=refresh_lifetime, secret=APP_REFRESH_TOKEN
    )
    access = SERVER.new_access(
        user,
        client_id,
        [],
        lifetime,
        refresh_token=refresh_token,
        secret=APP_USER_TOKEN,
        app_mode=True,
    )
    return dict(
        access_token=access,
        expires_in=lifetime,
        refresh_token=refresh_token,
        refresh_token_expires_in=refresh_lifetime,
        scope="",
        token_type="bearer",
    )


def user_object(persona: dict[str, Any], full: bool) -> dict[str, Any]:
    """GET /user as GitHub shows it; `full` adds the fields only the owner's token sees."""
    web, api = layout()
    login = persona["login"]
    users = f"{api}/users/{login}"
    body: dict[str, Any] = dict(
        login=login,
        id=persona["id"],
        node_id=f"MDQ6VXNlcj{persona['id']}",
        avatar_url=f"{web}/avatars/u/{persona['id']}?v=4",
        gravatar_id="",
        url=users,
        html_url=f"{web}/{login}",
        followers_url=f"{users}/followers",
        following_url=users + "/following" + "{/other_user}",
        gists_url=users + "/gists" + "{/gist_id}",
        starred_url=users + "/starred" + "{/owner}" + "{/repo}",
        subscriptions_url=f"{users}/subscriptions",
        organizations_url=f"{users}/orgs",
        repos_url=f"{users}/repos",
        events_url=users + "/events" + "{/privacy}",
        received_events_url=f"{users}/received_events",
        type="User",
        user_view_type="private" if full else "public",
        site_admin=False,
        name=persona["name"],
        company=None,
        blog="",
        location=None,
        email=persona["email"],
        hireable=None,
        bio=None,
        twitter_username=None,
        notification_email=persona["email"] if full else None,
        public_repos=3,
        public_gists=0,
        followers=12,
        following=1,
        created_at="2011-01-25T18:44:36Z",
        updated_at="2025-06-01T09:30:00Z",
    )
    if full:
        body.update(
            private_gists=0,
            total_private_repos=1,
            owned_private_repos=1,
            disk_usage=1024,
            collaborators=0,
            two_factor_authentication=True,
            plan=dict(name="free", space=976562499, collaborators=0, private_repos=10000),
        )
    return body


# --- endpoints ----------------------------------------------------------------------------


def authorize() -> BaseResponse:
    mock = state()
    req = AuthRequest.parse(parse_scopes)
    if req.client_id != SERVER.client_id:
        message = f"No OAuth app with client_id {req.client_id!r}."
        return error_page(NAME, "404: Not Found", message, 404)
    registered = SERVER.registered_redirect
    req = replace(req, redirect_uri=req.redirect_uri or registered)
    if not same_origin_path_under(req.redirect_uri, registered):
        return authorize_error(registered, "redirect_uri_mismatch", req.state)
    if mock.switch(NAME, "suspended"):
        return authorize_error(req.redirect_uri, "application_suspended", req.state)

    def approve(user: str) -> BaseResponse:
        code = SERVER.new_code(req, user)
        if mock.switch(NAME, "install_callback"):
            query = [("code", code), ("installation_id", "123"), ("setup_action", "install")]
            return redirect_back(req.redirect_uri, query)
        return redirect_back(req.redirect_uri, [("code", code)], req.state)

    def deny() -> BaseResponse:
        return authorize_error(req.redirect_uri, "access_denied", req.state)

    return decide(
        NAME,
        client_id=req.client_id,
        scopes=req.scopes,
        redirect_uri=req.redirect_uri,
        approve=approve,
        deny=deny,
    )


def user() -> Response:
    mock = state()
    record = api_auth(mock, "user")
    if isinstance(record, Response):
        return record
    full = record.extra["app_mode"] or bool({"user", "read:user"} & set(record.scopes))
    return api_reply(mock, record, odd_user(mock, user_object(PERSONAS[record.user], full)), "")


def odd_user(mock: MockState, body: dict[str, Any]) -> Any:
    """The `user_object` switch: a broken /user answer (no id, null or empty id, a list, or
    a good id with fields of the wrong type or shape)."""
    shape = mock.switch(NAME, "user_object")
    if shape == "odd_fields":
        body.update(
            login=["ada"],
            name="Ada\n" + "L" * 300,
            email={"address": "ada@example.com"},
            avatar_url="javascript:alert(1)",
        )
    if shape == "no_id":
        body.pop("id")
    elif shape == "null_id":
        body["id"] = None
    elif shape == "empty_id":
        body["id"] = ""
    elif shape == "list":
        return [body]
    return body


def emails() -> Response:
    mock = state()
    record = api_auth(mock, "emails")
    if isinstance(record, Response):
        return record
    mode = mock.switch(NAME, "emails")
    doc = (
        "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user"
    )
    allowed = record.extra["app_mode"] or bool({"user", "user:email"} & set(record.scopes))
    if mode == "404" or not allowed:
        return api_error(404, "Not Found", doc)
    if mode == "403":
        return api_error(403, "Resource not accessible by integration", doc)
    listing = listed_emails(mock, PERSONAS[record.user])
    if mode == "no_primary":
        for item in listing:
            item["primary"] = False
    elif mode == "empty":
        listing = []
    return api_reply(mock, record, listing, "user, user:email")


def listed_emails(mock: MockState, persona: dict[str, Any]) -> list[dict[str, Any]]:
    """The persona's addresses; with `public_email: bounced`, the public one is a secondary
    address that bounced and so is unverified ("If an email address is undeliverable or
    bouncing, it will be unverified": docs.github.com/en/account-and-profile/concepts/
    email-addresses), beside a verified private primary (GitHub issues tokens only to users
    with one: `unverified_user_email`)."""
    public = persona["email"]
    if not public or mock.switch(NAME, "public_email") == "verified":
        return [dict(item) for item in persona["emails"]]
    return [
        dict(
            email=f"{persona['login']}@mail.example",
            primary=True,
            verified=True,
            visibility="private",
        ),
        dict(email=public, primary=False, verified=False, visibility=None),
    ]


def revoke_grant(client_id: str) -> Response:
    return revoke(client_id, whole_grant=True)


def revoke_token(client_id: str) -> Response:
    return revoke(client_id, whole_grant=False)


def revoke(client_id: str, whole_grant: bool) -> Response:
    """DELETE /applications/{client_id}/grant|token: Basic client auth, JSON access_token."""
    mock = state()
    credentials = basic_credentials()
    if credentials is None or not SERVER.client_ok(*credentials):
        return api_error(401, "Bad credentials")
    if client_id != SERVER.client_id:
        return api_error(404, "Not Found")
    limited = rate_limited(mock, "revoke", None)
    if limited is not None:
        return limited
    value = (request.get_json(silent=True) or {}).get("access_token")
    if not value:
        return api_error(422, 'Invalid request.\n\n"access_token" wasn\'t supplied.')
    # It needs "a valid OAuth access_token": an expired one is as unknown as a revoked one,
    # so the grant stays (a GitHub App's refresh token still works).
    record = SERVER.live_access(value)
    if record is None:
        return api_error(404, "Not Found")
    if whole_grant:
        SERVER.drop_grant(record.user, client_id)
    else:
        SERVER.revoke(value, pair=False)
    return Response(status=204)


def authorizations() -> BaseResponse:
    """github.com/settings/applications: where a person revokes the app themselves (the app
    sends them here when it could not). The mock has no sign-in, so every persona holding a
    grant of the app is listed, each with its own Revoke button."""
    client_id = SERVER.client_id
    if request.method == "POST":
        SERVER.drop_grant(request.form.get("user", ""), client_id)
        return redirect(request.path, code=303)
    html = render_template(
        "github_authorizations.html",
        title=TITLE,
        client_id=client_id,
        users=[(user, PERSONA_LABELS[user]) for user in SERVER.holders(client_id)],
    )
    return Response(html, headers={"Cache-Control": "no-store"})


def avatar_image(user_id: int) -> Response:
    return persona_avatar(persona_with(PERSONAS, "id", user_id), str(user_id))


# --- what the cross-provider tests need to know (mock_providers/facts.py) -----------------


def fact_unverified_email(control: MockControl) -> str:
    """Without the email list (no user:email scope: 404) nothing confirms the public email."""
    control.switch(NAME, emails="404")
    return PERSONAS["ada"]["email"]


def fact_token_works(env: Env, access_token: str) -> bool:
    return bearer_works(f"{env['GITHUB_API_URL']}/user", access_token, **{"User-Agent": "tests"})


def fact_remove_app(control: MockControl, env: Env, grant: AppGrant) -> None:
    """Revoking the app in the person's settings deletes the grant, as this call does."""
    client_id = env["GITHUB_CLIENT_ID"]
    deleted = call(
        "DELETE",
        f"{env['GITHUB_API_URL']}/applications/{client_id}/grant",
        auth=(client_id, env["GITHUB_CLIENT_SECRET"]),
        json={"access_token": grant.access_token},
    )
    expect(deleted, 204)


def fact_kill_refresh_token(control: MockControl, env: Env, grant: AppGrant) -> None:
    """Refresh tokens rotate: someone who spent the stored one first left the app a dead one."""
    url = f"{env['GITHUB_URL']}/login/oauth/access_token"
    if "access_token" not in refresh_at(url, env, "GITHUB", grant.refresh_token).json():
        raise AssertionError("the stored GitHub refresh token did not work even once")


FACTS = MockFacts(
    name=NAME,
    other_persona="noname",
    email=PERSONAS["ada"]["email"],
    email_verified=True,
    unverified_email=fact_unverified_email,
    profile_endpoint="user",
    revoke_endpoint="revoke_grant",
    login_calls=3,
    api_variable="GITHUB_API_URL",
    refresh=RefreshFacts(
        # Only GitHub App user tokens expire and come with (rotating) refresh tokens.
        expiring={"app_mode": True, "expires_in": 60},
        long_lived={"expires_in": 28800},  # eight hours, as GitHub gives them
        kill=fact_kill_refresh_token,
    ),
    most_tokens={"app_mode": True, "expires_in": 60},
    token_works=fact_token_works,
    remove_app=fact_remove_app,
    token_refused=None,
    rate_limits=(
        RateLimit("primary", {"rate_limit": "primary"}, {"rate_limit": None}, (3500, 3600)),
        RateLimit("secondary", {"rate_limit": "secondary"}, {"rate_limit": None}, (60, 60)),
    ),
    # the secret pasted in the id field
    malformed_settings={"GITHUB_CLIENT_ID": "0123456789abcdef0123456789abcdef01234567"},
    malformed_findings=("GITHUB_CLIENT_ID does not look like a GitHub client id",),
)
