"""JSON API blueprint."""

from .views import bp

__all__ = ["bp"]
