"""The provider registry: one line per provider module.

To add a provider, write a module with a subclass of `OIDCProvider` (oidc.py, see google.py)
or `OAuth2Provider` (oauth2.py, see github.py) and add one line here. This package imports
nothing else of the app (tests/test_structure.py): the app reads these classes.
"""

from __future__ import annotations

from .base import Check, Identity, Provider, ProviderConfig
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

__all__ = ["PROVIDER_CLASSES", "Check", "Identity", "Provider", "ProviderConfig"]
