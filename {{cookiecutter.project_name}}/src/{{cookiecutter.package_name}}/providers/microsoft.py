"""Microsoft: work, school and personal accounts, OpenID Connect on the v2.0 endpoint.

Microsoft's own: MICROSOFT_TENANT is part of every URL, and for `common` and `organizations`
the discovery document's issuer is a template each ID token fills with its own `tid`; the
email is never verified, the picture is a Graph URL behind a token, AADSTS codes say what
went wrong, and no endpoint revokes a grant: the person removes the app at `user_apps_url`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .base import ProviderConfig
from .errors import LoginRefused
from .oidc import DISCOVERY_PATH, TENANT_PLACEHOLDER, OIDCProvider

# https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference (iss, tid),
# .../v2-protocols-oidc (the template), .../reference-error-codes (AADSTS)
CONSUMERS = "9188040d-6c67-4c5b-b112-36a304b66dad"  # the personal accounts' tenant
ISSUERS = dict.fromkeys(["common", "organizations"], TENANT_PLACEHOLDER) | {"consumers": CONSUMERS}
GUID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
TENANT_RULE = "MICROSOFT_TENANT must be common, organizations, consumers, a tenant id or domain"
PASTED_ID = "MICROSOFT_CLIENT_SECRET is a secret's ID (a GUID), not the secret's Value"
COPY_VALUE = "Copy the Value from the {console_name}."


class MicrosoftProvider(OIDCProvider):
    name, title, env_prefix = "microsoft", "Microsoft", "MICROSOFT"
    console_name = "Microsoft Entra admin center"
    console_url = (
        "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade"
    )
    # Where one removes the app: My Apps, for work or school accounts (personal: __init__).
    user_apps_url = "https://myapps.microsoft.com"
    discovery_setting = "MICROSOFT_LOGIN_URL"
    discovery_path = "/{MICROSOFT_TENANT}/v2.0" + DISCOVERY_PATH
    url_settings = {discovery_setting: "https://login.microsoftonline.com"}
    option_settings = {"MICROSOFT_TENANT": "common"}
    # Refresh tokens come only with offline_access, and userinfo needs nothing more
    # (https://learn.microsoft.com/entra/identity-platform/scopes-oidc, .../userinfo).
    scope = "openid profile email offline_access"
    offline_prompt = ""  # no consent screen needed for it
    option_patterns = {"MICROSOFT_TENANT": (r"[\w.-]+", TENANT_RULE)}  # it goes into every URL
    credential_mistakes = {"client_secret": (GUID.pattern, PASTED_ID, COPY_VALUE)}
    tenant_claim = ("tid", GUID)
    description_codes = {r"\bAADSTS(50011|500112)\b": "redirect_uri_mismatch"}
    # The subject is `sub`, what OIDC defines (and userinfo returns): immutable and pairwise,
    # one per app, so apps cannot track a person across them; `oid` is the same for all the
    # tenant's apps, which this app needs not be. The email "isn't guaranteed to be correct"
    # (claims reference above; .../migrate-off-email-claim-authorization): never verified.
    # userinfo's picture is a Graph URL that needs a token: no avatar.
    claims = {**OIDCProvider.claims, "email_verified": (), "avatar_url": ()}

    def __init__(self, config: ProviderConfig, *args: Any) -> None:
        super().__init__(config, *args)
        self.tenant = config.extra["MICROSOFT_TENANT"].lower()
        if ISSUERS.get(self.tenant, self.tenant) == CONSUMERS:
            self.user_apps_url = "https://account.live.com/consent/Manage"

    @classmethod
    def issuer_expected(cls, config: ProviderConfig, issuer: Any) -> bool:
        """The issuer names the tenant: its id (any id, for a domain name), or the template."""
        tenant = config.extra["MICROSOFT_TENANT"].lower()
        found = re.fullmatch(r"https?://.+/([^/]+)/v2\.0", str(issuer))
        named = found[1] if found else ""
        if tenant in ISSUERS or GUID.fullmatch(tenant):
            return named == ISSUERS.get(tenant, tenant)
        return bool(GUID.fullmatch(named))

    def check_claims(self, claims: Mapping[str, Any]) -> None:
        # `consumers` and a tenant's id need no rule here: their issuer names the tenant.
        if self.tenant == "organizations" and claims.get("tid") == CONSUMERS:
            message = "Personal Microsoft accounts cannot sign in here."
            hint = "Sign in with a work or school account."
            raise LoginRefused(403, "personal_account", message, hint)


ADAPTER = MicrosoftProvider
