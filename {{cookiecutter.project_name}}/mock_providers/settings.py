"""Settings of the mock providers: who the app under test is and which credentials it uses."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MockSettings:
    """Everything a mock needs to know about the app it serves.

    The registered redirect URI of each provider is `{app_url}/auth/<provider>/callback`,
    exactly what a developer would register in the provider's console.
    """

    app_url: str = "http://127.0.0.1:5000"
    interactive: bool = False
    # The mock's own base URL; `start()` fills it in once the port is known.
    public_url: str = ""
    # name -> (client id, client secret). Without an entry a provider gets the credentials its
    # module declares as CLIENT (shaped like the real ones: the app checks the shapes), else
    # `mock-<name>-client-id` / `mock-<name>-client-secret`, so a new mock needs no edit here.
    clients: dict[str, tuple[str, str]] = field(default_factory=dict)
    # name -> the name the app gives the provider in its routes, where a setting of the app
    # renames it: the registered callback follows it.
    routes: dict[str, str] = field(default_factory=dict)

    def credentials(self, provider: str) -> tuple[str, str]:
        """The (client id, client secret) the app uses with `provider`."""
        from . import load_providers  # the registry lives in the package, which imports us

        if provider in self.clients:
            return self.clients[provider]
        declared = getattr(load_providers().get(provider), "CLIENT", None)
        return declared or (f"mock-{provider}-client-id", f"mock-{provider}-client-secret")

    def app_env(self, provider: str, **urls: str) -> dict[str, str]:
        """The app's <PROVIDER>_CLIENT_ID and <PROVIDER>_CLIENT_SECRET for `provider`, and
        the variables in `urls` (where the app finds the provider)."""
        client_id, secret = self.credentials(provider)
        prefix = provider.upper()
        return {f"{prefix}_CLIENT_ID": client_id, f"{prefix}_CLIENT_SECRET": secret, **urls}

    def client_id(self, provider: str) -> str:
        return self.credentials(provider)[0]

    def client_secret(self, provider: str) -> str:
        return self.credentials(provider)[1]

    def callback(self, provider: str) -> str:
        """The redirect URI registered for `provider` in its (imaginary) developer console."""
        return f"{self.app_url.rstrip('/')}/auth/{self.routes.get(provider, provider)}/callback"
