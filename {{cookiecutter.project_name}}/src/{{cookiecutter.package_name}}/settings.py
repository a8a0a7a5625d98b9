"""Typed settings, read once from the environment at start-up.

Every problem is collected and reported together, each naming its variable, so a
misconfigured deployment fails before it serves a single request.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from limits import parse_many
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .masking import mask_url
from .providers import PROVIDER_CLASSES, Provider, ProviderConfig

DAY = 24 * 3600
NO_REDIS_EMULATION = (
    "REDIS_URL is not set and the in-process Redis emulation (fakeredis) is not installed: "
    "set REDIS_URL (e.g. redis://localhost:6379/0), or install the development extra: "
    "pip install -e '.[dev]'"
)
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")
DEVELOPMENT = "development"
PRODUCTION = "production"
# REQUEST_LOG: "notable" logs failures, changes, slow requests and the sign-in flow, and
# leaves routine successful reads to the proxy's access log; "all" logs every request.
REQUEST_LOG_CHOICES = ("notable", "all", "off")

# Values people paste from tutorials; refused in production whatever their length.
_HOW_TO_GENERATE_KEY = "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "dev", "development", "your-secret-key"}
# A provider's name in routes, Redis keys and the database (models.py: 32 characters).
PROVIDER_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_PROVIDER_NAME = 32
MAX_PROVIDER_TITLE = 40


class SettingsError(Exception):
    """Raised with every configuration problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid configuration:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class Settings:
    app_env: str
    secret_key: str
    redis_url: str | None
    # Seconds to connect to Redis and to wait for each answer (redis.py); see REDIS_TIMEOUT.
    redis_timeout: float
    # Any SQLAlchemy URL; development defaults to a SQLite file in ./instance/.
    database_url: str
    token_encryption_keys: tuple[str, ...]
    public_url: str | None
    trusted_proxy_count: int
    # Strict-Transport-Security max-age in production; 0 sends no HSTS header.
    hsts_seconds: int
    admin_emails: frozenset[str]
    http_timeout: float
    session_lifetime: int
    redis_key_prefix: str
    revoke_on_logout: bool
    api_token_default_lifetime: int
    api_token_max_lifetime: int
    # Removing one of these roles from a user signs all of their sessions out.
    security_roles: frozenset[str]
    # The app's own role names beyond `user` and `admin` (`flask roles grant` refuses others).
    app_roles: frozenset[str]
    # How recent a sign-in must be for sensitive changes: connecting or disconnecting a
    # provider, deleting the account, creating an admin-scope API token.
    reauth_window: int
    # How long security events are kept, in seconds.
    audit_retention: int
    # Which requests get a summary line in production: "notable", "all" or "off".
    request_log: str
    # Rate limits in Flask-Limiter's notation ("30 per minute"); see ratelimits.py.
    ratelimit_enabled: bool
    login_rate_limit: str
    api_token_rate_limit: str
{%- if cookiecutter.use_facebook %}
    facebook_callback_rate_limit: str
{%- endif %}
    # Caps on what one person holds: sessions (a sign-in beyond the cap ends their least
    # recently seen one) and live API tokens (one more is refused with a 409).
    max_sessions_per_user: int
    max_api_tokens_per_user: int
    providers: Mapping[str, ProviderConfig]
    disabled_providers: Mapping[str, str]
    # Every provider of this app by its name, enabled or not, in the order of the buttons:
    # what routes, records and pages use (a provider may be renamed, see `_named_class`).
    provider_classes: Mapping[str, type[Provider]]
    # Only non-empty when loaded with strict=False (for `flask auth doctor`).
    problems: tuple[str, ...] = ()

    @property
    def is_production(self) -> bool:
        return self.app_env == PRODUCTION


def _secret_key_problem(value: str) -> str | None:
    if not value:
        return f"SECRET_KEY is required: generate one with {_HOW_TO_GENERATE_KEY}"
    if value.lower() in _PLACEHOLDER_SECRETS or len(value) < 32 or len(set(value)) < 12:
        return (
            "SECRET_KEY is too weak: use at least 32 random characters (secrets.token_urlsafe(48))"
        )
    return None


def _int(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be a whole number, got {raw!r}")
        return default
    if value < 0:
        problems.append(f"{name} must not be negative")
    return value


def _at_least_one(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    """A cap: a whole number, 1 or more (0 would lock everyone out)."""
    value = _int(env, name, default, problems)
    if value == 0:  # a negative one is reported by _int
        problems.append(f"{name} must be at least 1")
    return value if value >= 1 else default


def _float(env: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name} must be a number of seconds, got {raw!r}")
        return default
    if not 0 < value <= 120:
        problems.append(f"{name} must be between 0 and 120 seconds")
    return value


def _bool(env: Mapping[str, str], name: str, problems: list[str], *, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    problems.append(f"{name} must be true or false, got {raw!r}")
    return False


def _rate_limit(env: Mapping[str, str], name: str, default: str, problems: list[str]) -> str:
    """One or more limits in Flask-Limiter's notation, e.g. "30 per minute; 500 per hour"."""
    raw = env.get(name, "").strip() or default
    try:
        limits = parse_many(raw)
    except ValueError:
        limits = []
    if not limits or any(limit.amount < 1 for limit in limits):
        problems.append(
            f"{name} must be a rate limit such as '30 per minute' (or '30/minute; 500/hour'), "
            f"got {raw!r}"
        )
        return default
    return raw


def _choice(
    env: Mapping[str, str], name: str, choices: tuple[str, ...], problems: list[str]
) -> str:
    """One of `choices`; the first is the default."""
    raw = env.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        problems.append(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return choices[0]
    return raw


def _encryption_keys(raw: str, production: bool, problems: list[str]) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        if production:
            problems.append(
                "TOKEN_ENCRYPTION_KEY is required in production: generate one with `python -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            )
        return ()
    valid = []
    for index, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            problems.append(
                f"TOKEN_ENCRYPTION_KEY key #{index} is not a Fernet key (32 url-safe base64 bytes)"
            )
        else:
            valid.append(key)
    return tuple(valid)


def default_database_url() -> str:
    """A SQLite file in the project's instance/ folder (next to .env): no server needed."""
    return f"sqlite:///{Path.cwd() / 'instance' / '{{ cookiecutter.package_name }}.sqlite3'}"


# What a refused DATABASE_URL becomes when only the doctor starts: nothing on disk.
NO_DATABASE = "sqlite://"


def _database_url(raw: str, production: bool, problems: list[str]) -> str:
    if not raw:
        if production:
            problems.append(
                "DATABASE_URL is required in production "
                "(e.g. postgresql+psycopg://user:password@host:5432/dbname)"
            )
            return NO_DATABASE
        return default_database_url()
    # The form hosting providers hand out means psycopg 3 here (the driver we install).
    for scheme in ("postgres://", "postgresql://"):
        if raw.startswith(scheme):
            raw = "postgresql+psycopg://" + raw.removeprefix(scheme)
    try:
        make_url(raw).get_dialect()  # an unknown backend (e.g. redis://) is no database URL
    except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        problems.append(
            "DATABASE_URL is not a database URL: use sqlite:///path/to/file.sqlite3 or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        )
        return NO_DATABASE
    return raw


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _provider_url(name: str, value: str, production: bool, problems: list[str]) -> None:
    """Provider URLs must be absolute; plain http is only tolerated for loopback mocks."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(f"{name} must be an absolute http(s) URL, got {mask_url(value)!r}")
    elif production and parts.scheme == "http" and not is_loopback_url(value):
        problems.append(f"{name} must use https:// in production (got {mask_url(value)!r})")


def _provider_config(
    cls: type[Provider], env: Mapping[str, str], production: bool, problems: list[str]
) -> ProviderConfig | None:
    """None when the provider is not configured; problems get one line per bad value.

    Only one of the two credentials is a mistake, not a switch: silently leaving the
    provider off would hide the typo until someone tries to sign in.
    """
    id_name, secret_name = f"{cls.env_prefix}_CLIENT_ID", f"{cls.env_prefix}_CLIENT_SECRET"
    client_id = env.get(id_name, "").strip()
    client_secret = env.get(secret_name, "").strip()
    if not (client_id and client_secret):
        if client_id or client_secret:
            given, missing = (id_name, secret_name) if client_id else (secret_name, id_name)
            problems.append(
                f"{missing} is not set but {given} is: set both to enable {cls.title}, "
                "or neither to leave it off"
            )
        return None
    extra: dict[str, str] = {}
    for variable, default in cls.url_settings.items():
        value = env.get(variable, "").strip() or default
        if variable not in cls.verbatim_urls:
            value = value.rstrip("/")
        if value:
            _provider_url(variable, value, production, problems)
        else:
            problems.append(f"{variable} is required to enable {cls.title}: set it to its URL")
        extra[variable] = value
    for variable, default in cls.option_settings.items():
        extra[variable] = env.get(variable, "").strip() or default
    problems += cls.validate(client_id, extra)
    return ProviderConfig(cls.name, client_id, client_secret, extra)


def _named_class(
    cls: type[Provider], env: Mapping[str, str], problems: list[str]
) -> type[Provider]:
    """The class under the name and title its variables give it (`Provider.name_setting`)."""
    name = (env.get(cls.name_setting, "").strip() if cls.name_setting else "") or cls.name
    title = (env.get(cls.title_setting, "").strip() if cls.title_setting else "") or cls.title
    if not PROVIDER_NAME.fullmatch(name) or len(name) > MAX_PROVIDER_NAME:
        problems.append(
            f"{cls.name_setting} must be a short lowercase name for URLs such as /login/<name> "
            f"(letters, digits and single '-', at most {MAX_PROVIDER_NAME}), got {name!r}"
        )
        name = cls.name
    if len(title) > MAX_PROVIDER_TITLE or not title.isprintable():
        problems.append(
            f"{cls.title_setting} must be one line of at most {MAX_PROVIDER_TITLE} characters"
        )
        title = cls.title
    return cls.renamed(name, title)


def _public_url(env: Mapping[str, str], production: bool, problems: list[str]) -> str | None:
    """The origin people use. Production requires it: without it redirect URIs and the CSRF
    origin check would follow the request's Host header, which anyone can send."""
    public_url = env.get("PUBLIC_URL", "").strip().rstrip("/") or None
    if public_url is None:
        if production:
            problems.append(
                "PUBLIC_URL is required in production: the address people use, e.g. "
                "https://app.example.com (redirect URIs are built from it)"
            )
        return None
    parts = urlsplit(public_url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        problems.append(
            f"PUBLIC_URL must look like https://app.example.com, got {mask_url(public_url)!r}"
        )
    elif production and parts.scheme != "https" and not is_loopback_url(public_url):
        problems.append("PUBLIC_URL must use https:// in production")
    return public_url


def load_settings(env: Mapping[str, str] | None = None, *, strict: bool = True) -> Settings:
    """Read and validate the environment; raise SettingsError listing every problem.

    With strict=False the problems are returned in `Settings.problems` instead, so the
    doctor can start and explain a configuration the app itself would refuse.
    """
    env = os.environ if env is None else env
    problems: list[str] = []

    app_env = (env.get("APP_ENV") or PRODUCTION).strip().lower()
    if app_env not in (DEVELOPMENT, PRODUCTION):
        problems.append(f"APP_ENV must be 'development' or 'production', got {app_env!r}")
        app_env = PRODUCTION
    production = app_env == PRODUCTION

    if production and env.get("FLASK_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
        # The debugger runs any code a visitor types: never on a production app.
        problems.append("FLASK_DEBUG (or flask run --debug) must be off in production")

    secret_key = env.get("SECRET_KEY", "").strip()
    secret_problem = _secret_key_problem(secret_key)
    if secret_problem and (production or not secret_key):
        problems.append(secret_problem)

    redis_url = env.get("REDIS_URL", "").strip() or None
    if redis_url is None and production:
        problems.append("REDIS_URL is required in production (e.g. redis://localhost:6379/0)")
    elif redis_url is None and importlib.util.find_spec("fakeredis") is None:
        # Development without REDIS_URL runs on fakeredis, which only the [dev] extra installs.
        problems.append(NO_REDIS_EMULATION)
    elif redis_url and urlsplit(redis_url).scheme not in REDIS_SCHEMES:
        problems.append(
            "REDIS_URL must start with redis://, rediss://, unix://, redis+sentinel:// or "
            f"redis+cluster://, got {mask_url(redis_url)!r}"
        )

    public_url = _public_url(env, production, problems)

    providers: dict[str, ProviderConfig] = {}
    disabled: dict[str, str] = {}
    classes: dict[str, type[Provider]] = {}
    for module_class in PROVIDER_CLASSES.values():
        cls = _named_class(module_class, env, problems)
        config = _provider_config(cls, env, production, problems)
        taken = classes.get(cls.name)
        if taken is not None and (config is None or cls.name in providers):
            if config is not None:  # both enabled: the routes would be ambiguous
                problems.append(
                    f"{cls.name_setting}={cls.name} is {taken.title}'s name here: choose another"
                )
            continue  # else the disabled one gives way
        classes[cls.name] = cls
        if config is None:
            disabled[cls.name] = (
                f"{cls.env_prefix}_CLIENT_ID and {cls.env_prefix}_CLIENT_SECRET are not both set"
            )
        else:
            disabled.pop(cls.name, None)
            providers[cls.name] = config
    if not providers and production:  # development only warns (configure_app, the doctor)
        variables = " or ".join(
            f"{cls.env_prefix}_CLIENT_ID and {cls.env_prefix}_CLIENT_SECRET"
            for cls in PROVIDER_CLASSES.values()
        )
        problems.append(f"no sign-in provider is configured: set {variables}")

    max_token_lifetime = _int(env, "API_TOKEN_MAX_LIFETIME", 90 * DAY, problems)
    if max_token_lifetime < 60:
        problems.append("API_TOKEN_MAX_LIFETIME must be at least 60 seconds")
    settings = Settings(
        app_env=app_env,
        secret_key=secret_key,
        redis_url=redis_url,
        redis_timeout=_float(env, "REDIS_TIMEOUT", 1.0, problems),
        database_url=_database_url(env.get("DATABASE_URL", "").strip(), production, problems),
        token_encryption_keys=_encryption_keys(
            env.get("TOKEN_ENCRYPTION_KEY", ""), production, problems
        ),
        public_url=public_url,
        trusted_proxy_count=_int(env, "TRUSTED_PROXY_COUNT", 0, problems),
        hsts_seconds=_int(env, "HSTS_SECONDS", 365 * DAY, problems),
        admin_emails=frozenset(
            e.strip().lower() for e in env.get("ADMIN_EMAILS", "").split(",") if e.strip()
        ),
        http_timeout=_float(env, "OAUTH_HTTP_TIMEOUT", 10.0, problems),
        session_lifetime=_int(env, "SESSION_LIFETIME", 14 * 24 * 3600, problems),
        revoke_on_logout=_bool(env, "REVOKE_ON_LOGOUT", problems),
        api_token_default_lifetime=min(30 * DAY, max_token_lifetime),
        api_token_max_lifetime=max_token_lifetime,
        security_roles=frozenset(
            r.strip() for r in env.get("SECURITY_ROLES", "admin").split(",") if r.strip()
        ),
        app_roles=frozenset(r.strip() for r in env.get("APP_ROLES", "").split(",") if r.strip()),
        reauth_window=_int(env, "REAUTH_WINDOW", 300, problems),
        audit_retention=_int(env, "AUDIT_RETENTION_DAYS", 365, problems) * DAY,
        request_log=_choice(env, "REQUEST_LOG", REQUEST_LOG_CHOICES, problems),
        ratelimit_enabled=_bool(env, "RATELIMIT_ENABLED", problems, default=True),
        login_rate_limit=_rate_limit(env, "LOGIN_RATE_LIMIT", "30 per minute", problems),
        api_token_rate_limit=_rate_limit(env, "API_TOKEN_RATE_LIMIT", "10 per minute", problems),
{%- if cookiecutter.use_facebook %}
        facebook_callback_rate_limit=_rate_limit(
            env, "FACEBOOK_CALLBACK_RATE_LIMIT", "300 per minute", problems
        ),
{%- endif %}
        redis_key_prefix=env.get("REDIS_KEY_PREFIX", "{{ cookiecutter.package_name }}:"),
        max_sessions_per_user=_at_least_one(env, "MAX_SESSIONS_PER_USER", 50, problems),
        max_api_tokens_per_user=_at_least_one(env, "MAX_API_TOKENS_PER_USER", 50, problems),
        providers=providers,
        disabled_providers=disabled,
        provider_classes=classes,
        problems=tuple(problems),
    )
    if problems and strict:
        raise SettingsError(problems)
    return settings
