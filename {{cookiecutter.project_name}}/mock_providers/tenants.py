"""Multi-tenant OpenID providers: every path starts with a tenant, and the issuer names one.

`TenantProvider(name, issuer=".../<tenant>/...", tenants=...)`: the `<tenant>` of a route is
the tenant asked for; `tenants` maps each one served to the tenant its issuer names, or to
TEMPLATE where accounts of any tenant sign in (the issuer then holds TEMPLATE, which each ID
token fills with its own `tenant_claim`); `excludes` leaves one tenant's accounts out of such
a path. `admits` says who signs in where.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from flask import request
from werkzeug.wrappers import Response

from .core import json_response
from .oauth import AuthRequest
from .openid_provider import OpenIDProvider
from .pages import error_page

TEMPLATE = "{tenantid}"
# The page an account of another tenant gets (a provider rewords it in `error_pages`).
ACCOUNT_PAGE = dict(account=("Wrong tenant", "{user}'s account is not in tenant '{tenant}'."))


@dataclass
class TenantProvider(OpenIDProvider):
    """An OpenID provider per tenant, all at one mock."""

    _: KW_ONLY
    tenants: Mapping[str, str] = field(default_factory=dict)
    tenant_claim: str = "tid"  # the ID token's claim, the persona's key and a switch
    excludes: Mapping[str, str] = field(default_factory=dict)  # tenant -> accounts refused
    # Discovery of an unknown tenant: (error, error_description naming {tenant}), JSON 400.
    unknown_tenant: tuple[str, str] = ("invalid_tenant", "Tenant '{tenant}' not found.")

    def tenant(self) -> str:
        """The tenant in the request's path, in lower case as issuers spell it."""
        return str((request.view_args or {}).get("tenant", "")).lower()

    def url(self, endpoint: str) -> str:
        return super().url(endpoint).replace("<tenant>", self.tenant())

    def issuer_url(self) -> str:
        return str(self.issuer).replace("<tenant>", str(self.tenants.get(self.tenant())))

    def token_tenant(self, user: str) -> str:
        """The tenant of a user's tokens: the `tenant_claim` switch's, else the persona's."""
        return str(self.switch(self.tenant_claim) or self.personas[user][self.tenant_claim])

    def id_claims(self, user: str, scopes: list[str]) -> dict[str, Any]:
        """The standard claims and the `tenant_claim` naming the token's tenant."""
        return {**super().id_claims(user, scopes), self.tenant_claim: self.token_tenant(user)}

    def token_issuer(self, user: str) -> str:
        return str(self.issuer).replace("<tenant>", self.token_tenant(user))

    def admits(self, tenant: str, account_tenant: str) -> bool:
        """Whether an account of `account_tenant` may sign in at the path's `tenant`."""
        excluded = self.excludes.get(tenant) == account_tenant
        return self.tenants.get(tenant) in (TEMPLATE, account_tenant) and not excluded

    def discovery_view(self, **path: str) -> Response:
        if self.tenant() in self.tenants:
            return super().discovery_view()
        error, description = self.unknown_tenant
        body = dict(error=error, error_description=description.format(tenant=self.tenant()))
        return json_response(body, 400)

    def approved(self, req: AuthRequest, user: str, code: str, consent_shown: bool) -> Response:
        if self.admits(self.tenant(), self.personas[user][self.tenant_claim]):
            return super().approved(req, user, code, consent_shown)
        heading, text = {**ACCOUNT_PAGE, **self.error_pages}["account"]
        message = text.format(user=user, tenant=self.tenant())
        return error_page(self.name, heading, message, 400)
