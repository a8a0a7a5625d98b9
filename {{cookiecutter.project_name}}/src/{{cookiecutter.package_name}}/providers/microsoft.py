"""Microsoft: work, school and personal accounts, OpenID Connect on the v2.0 endpoint, per
https://learn.microsoft.com/entra/identity-platform/ + v2-protocols-oidc, scopes-oidc,
id-token-claims-reference, userinfo, reference-error-codes, migrate-off-email-claim-authorization.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .base import ProviderConfig
from .errors import LoginRefused
from .oidc import DISCOVERY_PATH, TENANT_PLACEHOLDER, OIDCProvider

CONSUMERS = "9188040d-6c67-4c5b-b112-36a304b66dad"  # the personal accounts' tenant
# The issuer of common and organizations is a template each ID token fills with its `tid`.
ISSUERS = dict.fromkeys(["common", "organizations"], TENANT_PLACEHOLDER) | {"consumers": CONSUMERS}
GUID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
TENANT_RULE = "MICROSOFT_TENANT must be common, organizations, consumers, a tenant id or domain"
PASTED_ID = "MICROSOFT_CLIENT_SECRET is a secret's ID (a GUID), not the secret's Value"
COPY_VALUE = "Copy the Value from the {console_name}."
ENTRA_APPS = "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade"


class MicrosoftProvider(OIDCProvider):
    name, title, env_prefix = "microsoft", "Microsoft", "MICROSOFT"
    console_name = "Microsoft Entra admin center"
    console_url = ENTRA_APPS
    user_apps_url = "https://myapps.microsoft.com"  # My Apps: work or school accounts
    discovery_setting = "MICROSOFT_LOGIN_URL"
    discovery_path = "/{MICROSOFT_TENANT}/v2.0" + DISCOVERY_PATH
    url_settings = {discovery_setting: "https://login.microsoftonline.com"}
    option_settings = {"MICROSOFT_TENANT": "common"}
    option_patterns = {"MICROSOFT_TENANT": (r"[\w.-]+", TENANT_RULE)}  # it goes into every URL
    scope = "openid profile email offline_access"  # no refresh token without offline_access
    offline_prompt = ""  # and with it, a refresh token at every sign-in: no consent prompt
    credential_mistakes = {"client_secret": (GUID.pattern, PASTED_ID, COPY_VALUE)}
    tenant_claim = ("tid", GUID)
    tenant_setting = "MICROSOFT_TENANT"
    tenant_aliases = ISSUERS
    description_codes = {r"\bAADSTS(50011|500112)\b": "redirect_uri_mismatch"}  # bad redirect URI
    # The subject is `sub`: immutable and pairwise (one per app: apps cannot track people);
    # `oid` is shared by the tenant's apps. The email "isn't guaranteed to be correct": never
    # verified. The picture is a Graph URL needing a token: no avatar.
    claims = {**OIDCProvider.claims, "email_verified": (), "avatar_url": ()}

    def __init__(self, config: ProviderConfig, *args: Any) -> None:
        super().__init__(config, *args)  # no endpoint revokes a grant: the person does
        if ISSUERS.get(self.tenant, self.tenant) == CONSUMERS:
            self.user_apps_url = "https://account.live.com/consent/Manage"

    def check_claims(self, claims: Mapping[str, Any]) -> None:
        if self.tenant == "organizations" and claims.get("tid") == CONSUMERS:
            message = "Personal Microsoft accounts cannot sign in here."
            hint = "Sign in with a work or school account."
            raise LoginRefused(403, "personal_account", message, hint)


ADAPTER = MicrosoftProvider
