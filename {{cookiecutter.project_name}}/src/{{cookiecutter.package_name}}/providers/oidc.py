"""OpenID Connect over the OAuth 2 adapter: discovery, the ID token, userinfo, revocation.

A provider module declares its discovery variable and claim mapping. The ID token is
validated per OIDC Core 3.1.3.7: Authlib checks the signature, nonce, exp, iat and azp; we
add what it leaves out: only the algorithms we pin (the discovery document could list
`none`), `aud` exactly our client, a list of audiences only of us, the issuer. The signing
keys are cached as long as their response says (jwks.py), not forever. The client
authenticates as the discovery document allows, Basic first; revocation the same way.
The discovery document is used only when its issuer is the configured one (Discovery 4.3),
and the callback's `iss` must name it (RFC 9207), so a mixed-up provider gets nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import requests
from authlib.integrations.flask_client import FlaskOAuth2App
from joserfc.errors import JoseError
from joserfc.jws import extract_compact
from requests import Response

from .base import Check, Fetch, Identity, ProviderConfig, StoredGrant, as_bool, clean_subject
from .errors import InvalidProfile, LoginRefused, ProviderError, RevocationIncomplete
from .jwks import KeySetCache, key_set
from .oauth2 import OAuth2Provider

DISCOVERY_PATH = "/.well-known/openid-configuration"
ID_TOKEN_LEEWAY = 120  # seconds of clock skew tolerated on iat/exp
TENANT_PLACEHOLDER = "{tenantid}"  # in a multi-tenant issuer; each ID token fills in its own


def advertised_auth_method(metadata: Mapping[str, Any]) -> str:
    """client_secret_basic when listed or when nothing is (RFC 8414's default), else post."""
    supported = metadata.get("token_endpoint_auth_methods_supported")
    if not isinstance(supported, list) or "client_secret_basic" in supported:
        return "client_secret_basic"
    return "client_secret_post" if "client_secret_post" in supported else "client_secret_basic"


class OIDCClient(FlaskOAuth2App):
    """Authlib's client with the key set cached per process, authenticating as advertised.

    The discovery document stays cached for the process's life, as Authlib does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_set_cache = KeySetCache()

    def load_server_metadata(self) -> dict[str, Any]:
        metadata = super().load_server_metadata()
        # Authlib hands the document to each session it makes: this key picks the method.
        metadata.setdefault("token_endpoint_auth_method", advertised_auth_method(metadata))
        return metadata

    def fetch_jwk_set(self, force: bool = False) -> dict[str, Any]:
        """Called by Authlib's parse_id_token: first plain, again with force on unknown kid."""

        def fetch() -> requests.Response:
            uri = self.load_server_metadata().get("jwks_uri")
            if not uri:
                raise ValueError("the discovery document has no jwks_uri")
            with self._get_session() as session:
                return session.request("GET", uri, withhold_token=True)

        return self.key_set_cache.get(fetch, force)


class OIDCProvider(OAuth2Provider):
    """An OpenID Provider: the identity comes from the ID token, the profile from userinfo."""

    scope = "openid email profile"
    # The variable holding the discovery document's URL (one of `url_settings`), or the
    # issuer's when `discovery_path` is DISCOVERY_PATH (an issuer that is the instance's URL).
    discovery_setting: ClassVar[str]
    discovery_path: ClassVar[str] = ""  # "{VARIABLE}" in it: that option's value
    id_token_algorithms: ClassVar[tuple[str, ...]] = ("RS256",)
    # Other spellings of its issuer that the provider puts in ID tokens (some have two).
    issuer_spellings: ClassVar[tuple[str, ...]] = ()
    # An issuer per tenant: the ID-token claim naming the account's tenant, and the pattern
    # of its values. The document's issuer may hold TENANT_PLACEHOLDER, which each ID token
    # fills with its own tenant; either way the token's issuer names the token's tenant.
    tenant_claim: ClassVar[tuple[str, re.Pattern[str]] | None] = None
    # The option naming the tenant (in `discovery_path`), and the tenant each alias's issuer
    # names: an id, or TENANT_PLACEHOLDER (see `tenant_issuer_expected`).
    tenant_setting: ClassVar[str] = ""
    tenant_aliases: ClassVar[Mapping[str, str]] = {}
    # Identity field -> the claims that may hold it, the first present wins; () = never given.
    claims: ClassVar[dict[str, tuple[str, ...]]] = {
        "subject": ("sub",),
        "username": (),
        "email": ("email",),
        "email_verified": ("email_verified",),
        "name": ("name",),
        "avatar_url": ("picture",),
    }
    # Identity fields the ID token lacks, read at sign-in from `fetch_profile` (userinfo, or
    # the provider's own API), whose subject must be the ID token's (OIDC Core 5.3.2).
    profile_fields: ClassVar[tuple[str, ...]] = ()
    # OIDC Core 11: where the document lists `offline_access`, the scope brings a refresh
    # token, but only from a consent screen; "" for a provider that needs no prompt for it.
    offline_prompt: ClassVar[str] = "consent"

    @classmethod
    def discovery_url(cls, config: ProviderConfig) -> str:
        """Where the discovery document is (a provider may build it from several settings)."""
        return config.extra[cls.discovery_setting] + cls.discovery_path.format_map(config.extra)

    def registration(self) -> dict[str, Any]:
        return {
            **super().registration(),
            "server_metadata_url": self.discovery_url(self.config),
            "client_cls": OIDCClient,
        }

    def client_auth_method(self, client: FlaskOAuth2App) -> str:
        return self.metadata(client)["token_endpoint_auth_method"]

    def metadata(self, client: FlaskOAuth2App) -> dict[str, Any]:
        """The discovery document, refused unless its issuer is ours (Discovery 4.3: else an
        attacker's document could send the person and our secret elsewhere)."""
        metadata = client.load_server_metadata()
        if not self.issuer_expected(self.config, metadata.get("issuer")):
            raise ProviderError(
                502,
                "discovery_issuer_mismatch",
                f"{self.title}'s discovery document names another issuer "
                f"({str(metadata.get('issuer'))[:200]!r}), so this app does not use it.",
                f"Set {self.discovery_setting} to the provider's own issuer URL "
                "(`flask auth doctor` shows both).",
            )
        return metadata

    def authorize_params(
        self, client: FlaskOAuth2App, has_refresh_token: bool | None = None
    ) -> dict[str, Any]:
        """`offline_access` where listed, with the consent prompt unless a refresh token is
        known to be stored (nobody signed in: not known)."""
        params = super().authorize_params(client, has_refresh_token)
        scopes = self.scope.split()
        if "offline_access" in (self.metadata(client).get("scopes_supported") or ()):
            params["scope"] = " ".join(dict.fromkeys([*scopes, "offline_access"]))
            if self.offline_prompt and has_refresh_token is not True:
                params["prompt"] = self.offline_prompt
        return params

    def complete_login(
        self, client: FlaskOAuth2App, args: Mapping[str, str]
    ) -> tuple[Identity, dict[str, Any]]:
        self.check_response_issuer(self.metadata(client), args.get("iss"))
        return super().complete_login(client, args)

    def check_response_issuer(self, metadata: Mapping[str, Any], iss: str | None) -> None:
        """RFC 9207 2.4: an `iss` in the callback must be the issuer's, and is required where
        the document says the provider sends it: else the answer may be another provider's."""
        if iss is None and not metadata.get("authorization_response_iss_parameter_supported"):
            return
        issuers = self.id_token_issuers(metadata)
        patterns = [re.escape(i).replace(re.escape(TENANT_PLACEHOLDER), "[^/]+") for i in issuers]
        if iss is not None and any(re.fullmatch(p, iss) for p in patterns):
            return
        raise LoginRefused(
            400,
            "issuer_mismatch",
            f"This sign-in answer does not come from {self.title}'s issuer "
            f"({'no iss' if iss is None else 'iss ' + repr(iss[:200])}), so it was refused.",
            "Start the sign-in again from the login page.",
        )

    def id_token_issuers(self, metadata: Mapping[str, Any]) -> list[str]:
        issuer = str(metadata.get("issuer") or "")  # none: no ID token can match it
        return list(self.issuer_spellings) if issuer in self.issuer_spellings else [issuer]

    def issuer_claim(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Authlib's claims option for `iss`: one of `id_token_issuers`, with a `tenant_claim`
        filled with the token's tenant, which must be one of the issuer's path segments."""
        issuers = self.id_token_issuers(metadata)
        if self.tenant_claim is None:
            return {"essential": True, "values": issuers}
        claim, pattern = self.tenant_claim

        def valid(claims: Mapping[str, Any], iss: str) -> bool:
            tenant = str(claims.get(claim))
            named = [issuer.replace(TENANT_PLACEHOLDER, tenant) for issuer in issuers]
            return bool(pattern.fullmatch(tenant)) and iss in named and tenant in iss.split("/")

        return {"essential": True, "validate": valid}

    def exchange_code(self, client: FlaskOAuth2App) -> dict[str, Any]:
        metadata = self.metadata(client)
        # Authlib would accept any algorithm the discovery document lists (even `none`).
        metadata["id_token_signing_alg_values_supported"] = list(self.id_token_algorithms)
        options = {
            "iss": self.issuer_claim(metadata),
            # Authlib's default only checks azp; the audience must be us.
            "aud": {"essential": True, "value": self.config.client_id},
            "sub": {"essential": True},
        }
        try:
            token = self.token_request(
                lambda: client.authorize_access_token(
                    leeway=ID_TOKEN_LEEWAY, claims_options=options
                )
            )
        except JoseError:
            self.check_algorithm(client.token)  # a clearer page than "failed validation"
            raise
        if "id_token" not in token or not token.get("userinfo"):
            raise LoginRefused(
                400,
                "invalid_id_token",
                f"{self.title} sent no identity token.",
                "Start the sign-in again; the app asks for the `openid` scope.",
            )
        return token

    def check_algorithm(self, token: Mapping[str, Any] | None) -> None:
        """An ID token signed with another public-key algorithm than we pin is a setting of
        the client at the provider (`none` and HMAC stay "failed validation": forgeries)."""
        try:
            alg = extract_compact(str((token or {})["id_token"]).encode()).headers().get("alg")
        except (KeyError, ValueError, JoseError):
            return
        if alg not in self.id_token_algorithms and str(alg)[:2] in ("RS", "PS", "ES", "Ed"):
            accepted = ", ".join(self.id_token_algorithms)
            raise LoginRefused(
                400,
                "id_token_algorithm",
                f"{self.title} signed the identity token with {str(alg)[:20]}; "
                f"this app accepts {accepted}.",
                f"Set the client's ID token signature algorithm to {accepted} at the provider "
                f"({self.console_name}).",
                details={"alg": str(alg)[:20]},
            )

    def fetch_identity(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        claims: Mapping[str, Any] = token["userinfo"]
        audience = claims.get("aud")
        if isinstance(audience, list) and any(a != self.config.client_id for a in audience):
            # OIDC Core 3.1.3.7 (3): reject audiences we do not trust.
            message = f"The {self.title} identity token names other audiences."
            raise LoginRefused(400, "invalid_id_token", message)
        self.check_claims(claims)
        identity = self.identity_from_claims(claims)
        return self.with_profile(client, token, identity) if self.profile_fields else identity

    def with_profile(
        self, client: FlaskOAuth2App, token: dict[str, Any], identity: Identity
    ) -> Identity:
        """The ID token's identity with the `profile_fields` of the same account's profile."""
        profile = self.fetch_profile(client, token)
        if profile.subject != identity.subject:
            raise InvalidProfile("the profile is of another account than the ID token")
        return replace(identity, **{name: getattr(profile, name) for name in self.profile_fields})

    def check_claims(self, claims: Mapping[str, Any]) -> None:
        """The provider's own rule on a validated ID token (a hosted domain, say)."""

    def fetch_profile(self, client: FlaskOAuth2App, token: dict[str, Any]) -> Identity:
        endpoint = self.metadata(client)["userinfo_endpoint"]
        response = client.get(endpoint, token=token)
        if response.status_code != 200:
            raise self.api_error(response, "userinfo")
        return self.identity_from_claims(response.json())

    def identity_from_claims(self, claims: Mapping[str, Any]) -> Identity:
        """ID-token claims and the userinfo answer share these names."""
        if not isinstance(claims, Mapping):
            raise InvalidProfile("the profile is not a JSON object")

        def claim(field: str) -> Any:
            return next((claims[name] for name in self.claims[field] if name in claims), None)

        return Identity(
            provider=self.name,
            subject=clean_subject(claim("subject")),  # refuses a missing, null or empty one
            username=claim("username"),
            email=claim("email"),
            email_verified=as_bool(claim("email_verified")),
            name=claim("name"),
            avatar_url=claim("avatar_url"),
        )

    def refresh(self, client: FlaskOAuth2App, token: StoredGrant) -> dict[str, Any]:
        self.metadata(client)  # the issuer check, before the refresh token goes anywhere
        return super().refresh(client, token)

    def revoke(self, client: FlaskOAuth2App, token: StoredGrant | None, subject: str) -> None:
        if token is None:  # nothing to ask with
            raise RevocationIncomplete("no_token")
        endpoint = self.metadata(client).get("revocation_endpoint")
        if not endpoint:  # the person removes the app at the provider
            raise RevocationIncomplete("no_revocation_endpoint")
        self.revoke_token(client, endpoint, token)

    # --- `flask auth doctor` ------------------------------------------------------------

    @classmethod
    def probe_url(cls, config: ProviderConfig) -> str:
        return cls.discovery_url(config)

    @classmethod
    def issuer_expected(cls, config: ProviderConfig, issuer: Any) -> bool:
        """Discovery 4.3: the document's issuer is the URL it was fetched from (or a spelling
        the provider documents)."""
        if cls.tenant_setting:
            return cls.tenant_issuer_expected(config, issuer)
        url = cls.discovery_url(config)
        return issuer == url.removesuffix(DISCOVERY_PATH) or issuer in cls.issuer_spellings

    @classmethod
    def tenant_issuer_expected(cls, config: ProviderConfig, issuer: Any) -> bool:
        """`issuer_expected` of a multi-tenant provider: a URL on any host (the issuer's)
        ending as `discovery_path` does from the tenant on, naming the tenant: an alias's, an
        id itself, any id (`tenant_claim`'s pattern) for another name (a domain)."""
        pattern = cls.tenant_claim[1].pattern if cls.tenant_claim else "[^/]+"
        tenant = config.extra[cls.tenant_setting].lower()
        if tenant in cls.tenant_aliases or re.fullmatch(pattern, tenant):
            pattern = re.escape(cls.tenant_aliases.get(tenant, tenant))
        path = cls.discovery_path.removesuffix(DISCOVERY_PATH)
        tail = re.escape(path.partition("{" + cls.tenant_setting + "}")[2])
        return bool(re.fullmatch(f"https?://.+/({pattern}){tail}", str(issuer)))

    @property
    def tenant(self) -> str:
        """The tenant `tenant_setting` names, in lower case as issuers spell it."""
        return self.config.extra[self.tenant_setting].lower()

    @classmethod
    def probe_checks(cls, config: ProviderConfig, response: Response, fetch: Fetch) -> list[Check]:
        """The discovery document: it loads, names the issuer we expect, and its keys load."""
        url = cls.probe_url(config)
        try:
            metadata = response.json() if response.status_code == 200 else None
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict):
            status = response.status_code
            problem = f"the discovery document at {url} did not load (HTTP {status})"
            return [Check("fail", problem, f"Check {cls.discovery_setting}.")]
        issuer = metadata.get("issuer")
        if not cls.issuer_expected(config, issuer):
            problem = f"the discovery document's issuer {issuer!r} does not match {url}"
            hint = f"Sign-in refuses to use it (Discovery 4.3): check {cls.discovery_setting}."
            return [Check("fail", problem, hint)]
        loaded = Check("ok", f"discovery document loaded; issuer {issuer}")
        return [loaded, cls.key_set_check(metadata, fetch), *cls.metadata_checks(metadata)]

    @classmethod
    def metadata_checks(cls, metadata: Mapping[str, Any]) -> list[Check]:
        """What sign-in needs of the provider: ID tokens in an algorithm we pin, a client
        authentication we know (and which one we use); userinfo, else a thinner profile."""
        pinned = ", ".join(cls.id_token_algorithms)
        hint = f"Set the client's ID token signature algorithm to {pinned} at the provider."
        algorithms = metadata.get("id_token_signing_alg_values_supported")
        if not isinstance(algorithms, list):
            checks = [Check("warn", "no id_token_signing_alg_values_supported", hint)]
        elif set(algorithms) & set(cls.id_token_algorithms):
            checks = [Check("ok", f"ID tokens signed with {pinned}")]
        else:
            checks = [Check("fail", f"ID tokens signed with {algorithms}, not {pinned}", hint)]
        if not metadata.get("userinfo_endpoint"):
            problem = "no userinfo_endpoint: the profile is only what the ID token holds"
            checks.append(Check("warn", problem))
        methods = metadata.get("token_endpoint_auth_methods_supported")
        method = advertised_auth_method(metadata)
        if isinstance(methods, list) and method not in methods:
            hint = "Give the client a secret (client_secret_basic or client_secret_post)."
            checks.append(Check("fail", f"client authentication: only {methods}", hint))
        else:
            checks.append(Check("ok", f"client authentication: {method}"))
        return checks

    @classmethod
    def key_set_check(cls, metadata: Mapping[str, Any], fetch: Fetch) -> Check:
        """The signing keys (JWKS) load and hold an RSA key: RS256 ID tokens can be checked."""
        uri = metadata.get("jwks_uri")
        hint = f"ID tokens cannot be checked without them: check {cls.discovery_setting}."
        if not isinstance(uri, str) or not uri:
            return Check("warn", "the discovery document names no signing keys (jwks_uri)", hint)
        try:
            keys = key_set(fetch(uri))["keys"]
        except (requests.RequestException, ValueError) as exc:
            return Check(
                "fail", f"the signing keys at {uri} did not load ({type(exc).__name__})", hint
            )
        rsa = [k for k in keys if isinstance(k, dict) and k.get("kty") == "RSA"]
        if not rsa:
            return Check("fail", f"the key set at {uri} holds no RSA key for RS256", hint)
        return Check("ok", f"{len(rsa)} signing key(s) at {uri}")
