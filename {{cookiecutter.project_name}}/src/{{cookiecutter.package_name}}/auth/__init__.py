"""Sign-in: the login pages, the OAuth redirect and callback, logout, and route guards."""

from .guards import (
    current_api_token,
    current_user,
    login_required,
    protect_blueprint,
    require_recent_sign_in,
    roles_required,
    signed_in_user,
)
from .views import bp, track_last_seen

__all__ = [
    "bp",
    "current_api_token",
    "current_user",
    "login_required",
    "protect_blueprint",
    "require_recent_sign_in",
    "roles_required",
    "signed_in_user",
    "track_last_seen",
]
