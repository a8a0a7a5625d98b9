"""The provider registry: one line per provider module.

To add a provider, write a module with a `Provider` subclass (see base.py and github.py)
and add one line here.
"""

from __future__ import annotations

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

__all__ = ["PROVIDER_CLASSES", "Identity", "Provider"]
