"""The provider registry: one line per provider module.

To add a provider, write a module with a `Provider` subclass (see base.py and github.py)
and add one line here.
"""

from __future__ import annotations

from flask import Blueprint

from .base import Identity, Provider
{%- if cookiecutter.use_facebook %}
from .facebook import FacebookProvider
{%- endif %}
{%- if cookiecutter.use_github %}
from .github import GitHubProvider
{%- endif %}
{%- if cookiecutter.use_google %}
from .google import GoogleProvider
{%- endif %}

PROVIDER_CLASSES: dict[str, type[Provider]] = {
    cls.name: cls
    for cls in [
{%- if cookiecutter.use_google %}
        GoogleProvider,
{%- endif %}
{%- if cookiecutter.use_github %}
        GitHubProvider,
{%- endif %}
{%- if cookiecutter.use_facebook %}
        FacebookProvider,
{%- endif %}
    ]
}


def provider_blueprints() -> dict[str, Blueprint]:
    """Routes that belong to one provider (imported late: they use the app's stores)."""
    blueprints: dict[str, Blueprint] = {}
{%- if cookiecutter.use_facebook %}
    from .facebook_callbacks import bp as facebook_callbacks

    blueprints["facebook"] = facebook_callbacks
{%- endif %}
    return blueprints


__all__ = ["PROVIDER_CLASSES", "Identity", "Provider", "provider_blueprints"]
