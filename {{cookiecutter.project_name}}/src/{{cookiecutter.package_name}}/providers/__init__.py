"""The provider registry: one line per provider module, in the order of the sign-in buttons.

To add a provider, write a module with a subclass of `OIDCProvider` (oidc.py) or
`OAuth2Provider` (oauth2.py), name it `ADAPTER` at the module's end, and
add the module's name here. This package imports nothing else of the app
(tests/test_structure.py): the app reads these classes.
"""

from __future__ import annotations

import importlib

from .base import Check, Identity, Provider, ProviderConfig

PROVIDERS = [
{%- if cookiecutter.use_google %}
    "google",
{%- endif %}
{%- if cookiecutter.use_github %}
    "github",
{%- endif %}
{%- if cookiecutter.use_facebook %}
    "facebook",
{%- endif %}
{%- if cookiecutter.use_gitlab %}
    "gitlab",
{%- endif %}
{%- if cookiecutter.use_microsoft %}
    "microsoft",
{%- endif %}
{%- if cookiecutter.use_oidc %}
    "sso",
{%- endif %}
]


def adapter(module_name: str) -> type[Provider]:
    """The adapter class a provider module names `ADAPTER` (its `name` is the module's)."""
    cls = importlib.import_module(f"{__name__}.{module_name}").ADAPTER
    if not (isinstance(cls, type) and issubclass(cls, Provider) and cls.name == module_name):
        raise TypeError(f"providers/{module_name}.py: ADAPTER must be its Provider subclass")
    return cls


PROVIDER_CLASSES: dict[str, type[Provider]] = {name: adapter(name) for name in PROVIDERS}

__all__ = ["PROVIDERS", "PROVIDER_CLASSES", "Check", "Identity", "Provider", "ProviderConfig"]
