"""ID tokens as an OpenID provider signs them, bent by the ID-token switches, and the JWKS
that verifies them.

Each switch makes one token the app must refuse: a wrong issuer or audience, a token from
the future or the past, a key the JWKS does not publish (never, or no longer), an unsigned
or HMAC-forged token, a wrong or missing nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from flask import Response
from joserfc import jwt

from .core import b64url, json_response, random_text
from .keys import KeyRing


def id_token_switches(iss: str = "issuer", lifetime: int = 3600) -> dict[str, Any]:
    """The ID-token switches and their defaults (`iss`: "issuer" or an alias of the mock's)."""
    return dict(
        iss=iss,
        iat_skew=0,
        exp_offset=lifetime,
        aud="client_id",
        azp="client_id",
        kid="published",
        alg="RS256",
        nonce="echo",
        id_token=True,
    )


ID_TOKEN_CHOICES: dict[str, tuple[Any, ...]] = dict(
    kid=("published", "unpublished", "withdrawn"),
    alg=("RS256", "none", "HS256", "ES256"),  # ES256: as for a client registered for it
    nonce=("echo", "wrong", "omit"),
    id_token=(True, False),
)


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: the left half of the access token's SHA-256, base64url."""
    return b64url(hashlib.sha256(access_token.encode()).digest()[:16])


def compact(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """The JWS signing input: base64url(header).base64url(claims)."""
    parts = (json.dumps(part, separators=(",", ":")).encode() for part in (header, claims))
    return ".".join(b64url(part) for part in parts)


def sign(claims: dict[str, Any], alg: str, kid: str, ring: KeyRing, secret: str) -> str:
    """Sign as the `alg` and `kid` switches say; `none` and HS256 are forgeries by design."""
    if alg == "none":
        return compact(dict(alg="none", typ="JWT"), claims) + "."
    if alg == "ES256":
        return jwt.encode(dict(alg=alg, kid=ring.ec.kid, typ="JWT"), claims, ring.ec)
    if kid == "unpublished":
        key = ring.unpublished
    else:
        key = ring.withdrawn if kid == "withdrawn" else ring.current
    header = dict(alg=alg, kid=key.kid, typ="JWT")
    if alg == "HS256":  # an HMAC keyed with the client secret: the classic confusion attack
        signing_input = compact(header, claims)
        mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"
    return jwt.encode(header, claims, key)


def mint_id_token(
    switches: Mapping[str, Any],
    ring: KeyRing,
    *,
    issuer: str,
    aliases: Mapping[str, str],
    client_id: str,
    client_secret: str,
    claims: Mapping[str, Any],
    access_token: str,
    nonce: str | None,
) -> str:
    """An ID token with the provider's `claims` (sub first), bent by `switches`."""
    sw = switches
    issued = int(time.time()) + int(sw["iat_skew"]) + int(sw.get("clock_skew") or 0)
    iss = {"issuer": issuer, **aliases}.get(sw["iss"], sw["iss"])
    out: dict[str, Any] = dict(iss=iss)
    if sw["azp"] is not None:
        out["azp"] = client_id if sw["azp"] == "client_id" else sw["azp"]
    out["aud"] = client_id if sw["aud"] == "client_id" else sw["aud"]
    out.update(claims)
    out["at_hash"] = at_hash(access_token)
    if nonce and sw["nonce"] != "omit":
        out["nonce"] = nonce if sw["nonce"] == "echo" else "wrong-" + random_text(16)
    out["iat"] = issued
    out["exp"] = issued + int(sw["exp_offset"])
    return sign(out, sw["alg"], sw["kid"], ring, client_secret)


def jwks_response(ring: KeyRing, max_age: int, *, ec: bool = False) -> Response:
    """The JWKS, cacheable for `max_age` seconds (the header real providers send)."""
    return json_response(
        ring.jwks(ec=ec),
        headers={
            "Cache-Control": f"public, max-age={max_age}, must-revalidate, no-transform",
            "Expires": formatdate(time.time() + max_age, usegmt=True),
        },
    )
