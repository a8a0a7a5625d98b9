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
    # Credentials shaped like the real ones (the app checks the shapes).
    google_client_id: str = "mock-google-client-id.apps.googleusercontent.com"
    google_client_secret: str = "mock-google-client-secret"
    github_client_id: str = "Ov23liMockGitHub0001"
    github_client_secret: str = "mockgithubclientsecret00000000000000000001"
    facebook_client_id: str = "1234567890123456"
    facebook_client_secret: str = "0123456789abcdef0123456789abcdef"
    # Any other provider: name -> (client id, client secret); without an entry it gets
    # `mock-<name>-client-id` / `mock-<name>-client-secret`, so a new mock needs no field.
    clients: dict[str, tuple[str, str]] = field(default_factory=dict)

    def credentials(self, provider: str) -> tuple[str, str]:
        """The (client id, client secret) the app uses with `provider`."""
        client_id = getattr(self, f"{provider}_client_id", None)
        secret = getattr(self, f"{provider}_client_secret", None)
        if client_id is not None and secret is not None:
            return str(client_id), str(secret)
        default = (f"mock-{provider}-client-id", f"mock-{provider}-client-secret")
        return self.clients.get(provider, default)

    def client_id(self, provider: str) -> str:
        return self.credentials(provider)[0]

    def client_secret(self, provider: str) -> str:
        return self.credentials(provider)[1]

    def callback(self, provider: str) -> str:
        """The redirect URI registered for `provider` in its (imaginary) developer console."""
        return f"{self.app_url.rstrip('/')}/auth/{provider}/callback"
