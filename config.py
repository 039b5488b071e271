"""Configuration read from the environment (and an optional `.env` file).

Every variable is documented in the README's "Configuration" section. Nothing here runs at import
time: `load_config()` is called by `create_app()`.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_RETRY_SCHEDULE = "10,60,300,1800,7200,21600,43200"


class ConfigError(ValueError):
    """A variable has a value the application cannot use; the message names the variable."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None


def _float(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None


def _positive(env: dict, name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ConfigError(f"{name} must be 1 or more, not {value}")
    return value


def parse_retry_schedule(raw: str) -> list[float]:
    """`"10,60,300"` -> `[10.0, 60.0, 300.0]`: the waits before the 2nd, 3rd, ... attempt."""
    try:
        delays = [float(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"DELIVERY_RETRY_SCHEDULE must be comma-separated seconds, not {raw!r}") from None
    if any(d < 0 for d in delays):
        raise ConfigError("DELIVERY_RETRY_SCHEDULE must not contain negative delays")
    return delays


LANGUAGES = {"en": "en", "zh": "zh_CN", "zh_cn": "zh_CN", "zh_hans": "zh_CN", "zh_hans_cn": "zh_CN"}


def _language(raw: str | None) -> str:
    """MERCHANT_LANGUAGE as a catalogue name: `en` or `zh_CN` (also written zh, zh-CN, zh-Hans)."""
    name = (raw or "en").strip().lower().replace("-", "_")
    if name not in LANGUAGES:
        raise ConfigError(f"MERCHANT_LANGUAGE must be en or zh-CN, not {raw!r}")
    return LANGUAGES[name]


def _currency(raw: str | None) -> str:
    from babel.numbers import list_currencies

    code = (raw or "CNY").strip().upper()
    if code not in list_currencies():
        raise ConfigError(f"MERCHANT_CURRENCY must be an ISO 4217 code such as CNY or USD, not {raw!r}")
    return code


def _secret_key(instance_path: Path, env: dict) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in the instance folder.

    Keeping it on disk means sessions survive restarts of `make run` without the merchant having
    to invent a key; production deployments set SECRET_KEY explicitly.
    """
    if env.get("SECRET_KEY"):
        return env["SECRET_KEY"]
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


# The variables that, when set, lock a field of Settings › General (notify/shop_settings.py).
SHOP_SETTING_VARIABLES = ("MERCHANT_NAME", "MERCHANT_CURRENCY", "MERCHANT_LANGUAGE", "MERCHANT_TIMEZONE", "MAIL_SERVER",
                          "MAIL_PORT", "MAIL_USE_TLS", "MAIL_USE_SSL", "MAIL_USERNAME", "MAIL_PASSWORD",
                          "MAIL_DEFAULT_SENDER")


def _check_drain_fits_job(budget: float, connect_timeout: float, read_timeout: float) -> None:
    """A drain is an RQ job that RQ kills at its job timeout (notify.queue.JOB_TIMEOUT), losing
    the requests it has out. It takes work for DRAIN_BUDGET seconds at least, and a request it
    starts then takes up to connect + read timeout, plus DRAIN_MARGIN to record the last results:
    all of it must fit in the job. (The lease is compared with the job timeout when a worker
    starts: `lease_warning`.)"""
    from notify.queue import DRAIN_MARGIN, JOB_TIMEOUT

    if budget <= 0:
        raise ConfigError(f"DRAIN_BUDGET must be more than 0 seconds, not {budget:g}")
    longest = budget + connect_timeout + read_timeout + DRAIN_MARGIN
    if longest > JOB_TIMEOUT:
        raise ConfigError(
            f"DRAIN_BUDGET ({budget:g} s) + DELIVERY_CONNECT_TIMEOUT ({connect_timeout:g} s) + DELIVERY_READ_TIMEOUT "
            f"({read_timeout:g} s) + {DRAIN_MARGIN:g} s to record the results is {longest:g} s, more than the "
            f"{JOB_TIMEOUT} s RQ gives a drain job before it kills it: lower DRAIN_BUDGET or the timeouts")


def lease_warning(config) -> str | None:
    """What a worker says at start-up when DELIVERY_LEASE_SECONDS is shorter than RQ's job timeout
    for a drain: a worker that is slow but alive (a hanging Redis or database) could then lose a
    claim while its job still runs, and the delivery be sent twice. Its second result is dropped
    (the claim token), and receivers de-duplicate on X-Apsdai-Delivery, so this is allowed (short
    leases make tests and small set-ups recover quickly) but said."""
    from notify.queue import JOB_TIMEOUT

    lease = config["DELIVERY_LEASE_SECONDS"]
    if lease >= JOB_TIMEOUT:
        return None
    return (f"DELIVERY_LEASE_SECONDS ({lease:g} s) is shorter than the {JOB_TIMEOUT} s a drain job may run: a "
            f"delivery held by a slow worker may be sent twice (receivers de-duplicate on X-Apsdai-Delivery). "
            f"{JOB_TIMEOUT} s or more avoids it.")


def load_config(instance_path: str | Path, env: dict | None = None) -> dict:
    """Build the Flask config mapping from `env` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    instance_path = Path(instance_path)

    tz_name = env.get("MERCHANT_TIMEZONE") or "UTC"
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"MERCHANT_TIMEZONE {tz_name!r} is not a known IANA time zone") from None

    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance_path / 'merchant_notify.db'}"
    if database_url.startswith("postgres://"):
        # Heroku-style URLs; SQLAlchemy wants the psycopg driver named.
        database_url = "postgresql+psycopg://" + database_url[len("postgres://"):]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]

    connect_timeout = _float(env, "DELIVERY_CONNECT_TIMEOUT", 5.0)
    read_timeout = _float(env, "DELIVERY_READ_TIMEOUT", 10.0)
    # How long a worker's claim on a delivery holds. It must outlast one attempt (timeouts plus
    # recording it); when it runs out, the worker is presumed dead and the sweeper hands the
    # delivery to another. The default also outlasts RQ's job timeout (120 s).
    lease = _float(env, "DELIVERY_LEASE_SECONDS", 150.0)
    if lease < connect_timeout + read_timeout + 5:
        raise ConfigError("DELIVERY_LEASE_SECONDS must exceed DELIVERY_CONNECT_TIMEOUT + DELIVERY_READ_TIMEOUT by 5 s")
    drain_budget = _float(env, "DRAIN_BUDGET", 10.0)
    _check_drain_fits_job(drain_budget, connect_timeout, read_timeout)
    mail_port = _int(env, "MAIL_PORT", 25)
    return {
        "SECRET_KEY": _secret_key(instance_path, env),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env.get("REDIS_URL") or None,
        "RQ_QUEUE": env.get("RQ_QUEUE") or "merchant-notify",
        "MERCHANT_TIMEZONE": tz_name,
        # The currency of the daily report's amounts.
        "MERCHANT_CURRENCY": _currency(env.get("MERCHANT_CURRENCY")),
        # The shop's name in email subjects and chat footers.
        "MERCHANT_NAME": (env.get("MERCHANT_NAME") or "Shop").strip(),
        # Outbound delivery
        "DELIVERY_CONNECT_TIMEOUT": connect_timeout,
        "DELIVERY_READ_TIMEOUT": read_timeout,
        "DELIVERY_LEASE_SECONDS": lease,
        "DELIVERY_RETRY_SCHEDULE": parse_retry_schedule(env.get("DELIVERY_RETRY_SCHEDULE") or DEFAULT_RETRY_SCHEDULE),
        "DELIVERY_RESPONSE_MAX_BYTES": _int(env, "DELIVERY_RESPONSE_MAX_BYTES", 64 * 1024),
        "SWEEP_INTERVAL": _int(env, "SWEEP_INTERVAL", 30),
        # How long past its due time a delivery waits before the sweeper puts it back in Redis.
        "SWEEP_GRACE_SECONDS": _float(env, "SWEEP_GRACE_SECONDS", 30.0),
        # A channel whose every delivery failed for this long is disabled (and the merchant told).
        "CHANNEL_DISABLE_AFTER_HOURS": _float(env, "CHANNEL_DISABLE_AFTER_HOURS", 24.0),
        # Events, deliveries and attempts older than this are deleted (hourly).
        "RETENTION_DAYS": _positive(env, "RETENTION_DAYS", 30),
        # Deliveries to loopback and private addresses (LAN systems, local development).
        "ALLOW_PRIVATE_TARGETS": _bool(env.get("ALLOW_PRIVATE_TARGETS"), False),
        # Requests in flight per worker process, in all and to one endpoint.
        "DELIVERY_CONCURRENCY": _int(env, "DELIVERY_CONCURRENCY", 64),
        "DELIVERY_PER_ENDPOINT_CONCURRENCY": _int(env, "DELIVERY_PER_ENDPOINT_CONCURRENCY", 32),
        # Seconds a drain job works before handing over to a fresh job (keeps shutdowns prompt).
        "DRAIN_BUDGET": drain_budget,
        # Events API
        "API_MAX_BODY_BYTES": _int(env, "API_MAX_BODY_BYTES", 64 * 1024),
        # Admin forms never need more than this; the API has its own, smaller limit.
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # Mail (Flask-Mail reads these names)
        "MAIL_SERVER": env.get("MAIL_SERVER") or "localhost",
        "MAIL_PORT": mail_port,
        "MAIL_USE_TLS": _bool(env.get("MAIL_USE_TLS"), False),
        "MAIL_USE_SSL": _bool(env.get("MAIL_USE_SSL"), False),
        "MAIL_USERNAME": env.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD") or None,
        "MAIL_DEFAULT_SENDER": env.get("MAIL_DEFAULT_SENDER") or "merchant-notify@localhost",
        # Flask-Mail would default this to TESTING; the tests send to a real (loopback) server.
        "MAIL_SUPPRESS_SEND": _bool(env.get("MAIL_SUPPRESS_SEND"), False),
        # Seconds an SMTP server has to connect and answer each command (smtplib has no default).
        "MAIL_TIMEOUT": _float(env, "MAIL_TIMEOUT", 10.0),
        # i18n
        "BABEL_DEFAULT_LOCALE": "en",
        # The language of messages written outside a browser request (worker-side texts).
        "MERCHANT_LANGUAGE": _language(env.get("MERCHANT_LANGUAGE")),
        "BABEL_DEFAULT_TIMEZONE": tz_name,
        "LANGUAGES": ["en", "zh_CN"],
        # Session cookie hardening; SESSION_COOKIE_SECURE when served over HTTPS.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE"), False),
        # Failed logins (and setup and password-change attempts) allowed in any window of
        # LOGIN_FAILURE_WINDOW seconds, per username and per client address; then 429 until the
        # oldest failure leaves the window, even for the right password.
        "LOGIN_FAILURES_PER_USERNAME": _positive(env, "LOGIN_FAILURES_PER_USERNAME", 10),
        "LOGIN_FAILURES_PER_ADDRESS": _positive(env, "LOGIN_FAILURES_PER_ADDRESS", 30),
        "LOGIN_FAILURE_WINDOW": _positive(env, "LOGIN_FAILURE_WINDOW", 15 * 60),
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,
        # The admin's address as the merchant's browser reaches it: links in messages (a digest's
        # "and 12 more" opens its deliveries there).
        "PUBLIC_URL": (env.get("PUBLIC_URL") or "http://127.0.0.1:5000").strip(),
        # Seconds a delivery may wait for a digest before the next digest carries it even when it
        # cannot list it (counted in "and N more", behind the link): bounds the lag of a sustained
        # overload to about this plus one slot of the robot (notify.digests).
        "DIGEST_LAG_BOUND": _float(env, "DIGEST_LAG_BOUND", 60.0),
        # Set by `make run`: the receiver demo, offered on the notifications page as a first WebHook.
        "RECEIVER_DEMO_URL": env.get("RECEIVER_DEMO_URL") or None,
        "RECEIVER_DEMO_SECRET": env.get("RECEIVER_DEMO_SECRET") or None,
        # The shop's settings these variables give are defaults for what the merchant has not
        # saved on Settings › General; the ones set here lock their field (notify/shop_settings.py).
        "SETTINGS_FROM_ENVIRONMENT": sorted(name for name in SHOP_SETTING_VARIABLES if env.get(name)),
    }
