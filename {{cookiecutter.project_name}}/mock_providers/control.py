"""`MockControl`: the control API of a running mock, from Python (over real HTTP)."""

from __future__ import annotations

from typing import Any

import requests


class MockControl:
    """Flip switches and inspect a mock at `base_url`, e.g. `MockControl(mock.url)`."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A control endpoint, `/_mock/<path>`: one below, or a provider module's own (e.g.
        one that makes the mock call the app); its JSON answer, or ValueError."""
        response = self.session.request(
            method, f"{self.base_url}/_mock/{path}", timeout=self.timeout, **kwargs
        )
        if response.status_code >= 400:
            raise ValueError(
                f"mock control {method} {path}: {response.status_code} {response.text}"
            )
        return response.json()

    def reset(self) -> None:
        """All switches to defaults; every code, token, consent and counter forgotten."""
        self.call("POST", "reset")

    def switch(self, provider: str, **values: Any) -> dict[str, Any]:
        """Merge `values` into a provider's switches; returns them all. Typos raise ValueError."""
        return self.call("POST", f"switches/{provider}", json=values)

    def switches(self) -> dict[str, dict[str, Any]]:
        return self.call("GET", "switches")

    def requests(self) -> dict[str, dict[str, int]]:
        """Request counts per provider and endpoint, e.g. `[name]["token"]`."""
        return self.call("GET", "requests")

    def minted(self) -> list[str]:
        """Every code and token the mock handed out, to assert none leaks from the app."""
        return self.call("GET", "minted")

    def rotate_keys(self, provider: str) -> str:
        """Publish a new signing key of an OpenID provider (the old one leaves its JWKS);
        returns its kid."""
        return self.call("POST", f"{provider}/rotate-keys")["kid"]
