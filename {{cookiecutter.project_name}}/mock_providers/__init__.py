"""Local fake sign-in providers, quirks included: one module each, for the enabled ones.

The app never imports this package: tests and `make demo` start it and point the app at it
with environment variables (`RunningMock.app_env()`). Each provider is one module with the
same small shape:

    TITLE, PERSONAS, PERSONA_LABELS   who can sign in, and how the consent page shows them
    SWITCHES, CHOICES                  provider-specific switches, their defaults and values
    register(app) -> [blueprint names] mount its endpoints
    app_env(base_url, settings)        the variables that point the app at it

The modules are built on one OAuth/OIDC toolkit (grants.py, oauth.py, oauth_errors.py,
openid_provider.py, id_tokens.py, keys.py). To add a provider, write such a module and add
its name to PROVIDERS. See README.md, "How to add a mock provider".
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .control import MockControl
from .server import RunningMock, app_env, create_app, start
from .settings import MockSettings

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


def load_providers() -> dict[str, ModuleType]:
    """The enabled provider modules, by name, in registry order."""
    return {name: importlib.import_module(f"{__name__}.{name}") for name in PROVIDERS}


__all__ = [
    "PROVIDERS",
    "MockControl",
    "MockSettings",
    "RunningMock",
    "app_env",
    "create_app",
    "load_providers",
    "start",
]
