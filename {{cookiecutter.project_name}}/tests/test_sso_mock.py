"""The mock single sign-on, as any client of an OpenID provider by the book sees it (no app):
discovery, the ID token and userinfo, refresh tokens only with offline_access and consent,
revocation with client authentication, and RP-Initiated Logout's end-session endpoint."""

from __future__ import annotations

import pytest
import requests
from conftest import query
from joserfc import jwt
from joserfc.jwk import KeySet

from mock_providers import RunningMock

ADA = "5c1f0d6e-ada"


def issuer(fake: RunningMock) -> str:
    return fake.app_env()["OIDC_ISSUER"]


def metadata(fake: RunningMock) -> dict:
    return requests.get(f"{issuer(fake)}/.well-known/openid-configuration", timeout=10).json()


def client(fake: RunningMock) -> tuple[str, str]:
    env = fake.app_env()
    return env["OIDC_CLIENT_ID"], env["OIDC_CLIENT_SECRET"]


def authorize(fake: RunningMock, scope: str, **params: str) -> dict[str, str]:
    """An authorization request straight to the mock: the callback's query."""
    query_params = dict(
        client_id=client(fake)[0],
        redirect_uri=fake.settings.callback("sso"),
        response_type="code",
        scope=scope,
        state="s1",
        **params,
    )
    url = metadata(fake)["authorization_endpoint"]
    answer = requests.get(url, params=query_params, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return query(answer.headers["Location"])


def tokens(fake: RunningMock, scope: str, **params: str) -> dict:
    """A whole code flow: the token endpoint's answer."""
    code = authorize(fake, scope, **params)["code"]
    form = dict(
        grant_type="authorization_code", code=code, redirect_uri=fake.settings.callback("sso")
    )
    answer = requests.post(
        metadata(fake)["token_endpoint"], data=form, auth=client(fake), timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def claims(fake: RunningMock, id_token: str) -> dict:
    keys = requests.get(metadata(fake)["jwks_uri"], timeout=10).json()
    return jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=["RS256"]).claims


def test_discovery_is_the_books(fake) -> None:
    doc, base = metadata(fake), issuer(fake)
    assert doc["issuer"] == base and base.endswith("/sso")
    assert doc["authorization_endpoint"] == f"{base}/auth"
    assert doc["userinfo_endpoint"] == f"{base}/me"
    assert doc["revocation_endpoint"] == f"{base}/token/revocation"
    assert doc["end_session_endpoint"] == f"{base}/session/end"
    assert doc["token_endpoint_auth_methods_supported"][0] == "client_secret_basic"
    assert "offline_access" in doc["scopes_supported"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


def test_callbacks_carry_the_issuer_errors_too(fake) -> None:
    """RFC 9207 2: in every authorization response."""
    assert authorize(fake, "openid")["iss"] == issuer(fake)
    fake.control.switch("sso", deny=True)
    denied = authorize(fake, "openid")
    assert denied["error"] == "access_denied" and denied["iss"] == issuer(fake)
    refused = authorize(fake, "email")  # no openid
    assert refused["error"] == "invalid_scope" and refused["iss"] == issuer(fake)


def test_the_id_token_names_the_person_and_userinfo_describes_them(fake) -> None:
    answer = tokens(fake, "openid email profile")
    named = claims(fake, answer["id_token"])
    assert set(named) == {"iss", "aud", "azp", "sub", "at_hash", "iat", "exp"}
    assert named["sub"] == ADA and named["iss"] == issuer(fake)
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    info = requests.get(metadata(fake)["userinfo_endpoint"], headers=headers, timeout=10).json()
    assert info["sub"] == ADA and info["preferred_username"] == "ada"
    assert (info["email"], info["email_verified"], info["name"]) == (
        "ada@example.com",
        True,
        "Ada Lovelace",
    )
    assert info["picture"] == f"{issuer(fake)}/avatar/{ADA}"


@pytest.mark.parametrize(
    ("scope", "params", "refresh"),
    [
        ("openid", {}, False),
        ("openid offline_access", {}, True),  # the first consent
        ("openid offline_access", {"prompt": "consent"}, True),
    ],
)
def test_refresh_tokens_only_with_offline_access_and_a_consent(fake, scope, params, refresh):
    assert ("refresh_token" in tokens(fake, scope, **params)) is refresh


def test_without_a_consent_screen_no_refresh_token_comes(fake) -> None:
    tokens(fake, "openid")  # consented once
    assert "refresh_token" not in tokens(fake, "openid offline_access")
    assert "refresh_token" in tokens(fake, "openid offline_access", prompt="consent")


def test_revocation_needs_the_client_and_takes_unknown_tokens(fake) -> None:
    url = metadata(fake)["revocation_endpoint"]
    access = tokens(fake, "openid")["access_token"]
    anonymous = requests.post(url, data={"token": access}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    unknown = requests.post(url, data={"token": "nope"}, auth=client(fake), timeout=10)
    assert unknown.status_code == 200  # RFC 7009 2.2
    assert requests.post(url, data={"token": access}, auth=client(fake), timeout=10).ok
    headers = {"Authorization": f"Bearer {access}"}
    info = requests.get(metadata(fake)["userinfo_endpoint"], headers=headers, timeout=10)
    assert info.status_code == 401


def end_session(fake: RunningMock, **params: str) -> requests.Response:
    url = metadata(fake)["end_session_endpoint"]
    return requests.get(url, params=params, allow_redirects=False, timeout=10)


def test_end_session_goes_back_to_the_registered_uri_with_state(fake) -> None:
    hint = tokens(fake, "openid")["id_token"]
    home = fake.settings.app_url + "/"
    back = end_session(fake, id_token_hint=hint, post_logout_redirect_uri=home, state="x1")
    assert back.status_code == 302 and back.headers["Location"] == f"{home}?state=x1"
    by_client = end_session(fake, client_id=client(fake)[0], post_logout_redirect_uri=home)
    assert by_client.status_code == 302 and by_client.headers["Location"] == home
    alone = end_session(fake)
    assert alone.status_code == 200 and "signed out" in alone.text
    assert fake.control.requests()["sso"]["end_session"] == 3


@pytest.mark.parametrize(
    "params",
    [
        {"post_logout_redirect_uri": "https://evil.example/"},  # whose? no hint, no client
        {"client_id": "someone-else"},
        {"id_token_hint": "not.a.token"},
    ],
    ids=["no-client", "other-client", "bad-hint"],
)
def test_end_session_refuses_what_it_cannot_trust(fake, params) -> None:
    assert end_session(fake, **params).status_code == 400


def test_end_session_refuses_an_unregistered_redirect(fake) -> None:
    hint = tokens(fake, "openid")["id_token"]
    elsewhere = end_session(
        fake, id_token_hint=hint, post_logout_redirect_uri="https://evil.example/"
    )
    assert elsewhere.status_code == 400 and "not registered" in elsewhere.text
    assert "Location" not in elsewhere.headers


def test_the_end_session_switch_takes_the_endpoint_out_of_discovery(fake) -> None:
    fake.control.switch("sso", end_session="unadvertised")
    assert "end_session_endpoint" not in metadata(fake)
