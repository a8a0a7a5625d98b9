"""Provider tokens: the encrypted vault and the single-flight refresher."""

from .refresh import ReauthRequired, TokenService
from .vault import StoredToken, TokenVault

__all__ = ["ReauthRequired", "StoredToken", "TokenService", "TokenVault"]
