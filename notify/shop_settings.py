"""The shop's general settings: its name, currency, language of messages, time zone and mail server.

Every reader asks `effective()`; nobody reads `MERCHANT_*` or `MAIL_*` from the app config directly.

Where a value comes from (the precedence rule, first that applies):
1. a variable set (non-empty) in the process environment (or `.env`) locks its field: operators who
   keep configuration as code stay in charge, and the page shows the field read-only, naming the
   variable (`app.config["SETTINGS_FROM_ENVIRONMENT"]`, filled by `config.load_config`);
2. what the merchant saved on Settings › Configuration › General (rows of the `settings` table,
   keys `general.*`);
3. the built-in default (`config.py`: Shop, CNY, en, UTC, localhost:25, no security, …).

Workers on other machines see a change without a restart: the rows are read from the database and
kept per process for at most `CACHE_SECONDS`, so the drain (hundreds of deliveries a second)
costs one small query every few seconds, not one per delivery. Saving in this process forgets the
copy at once.
"""
from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from extensions import db
from models import Setting

CACHE_SECONDS = 5.0
PREFIX = "general."

NONE, STARTTLS, SSL = "none", "starttls", "ssl"
SECURITIES = (NONE, STARTTLS, SSL)
LANGUAGES = ("en", "zh_CN")

# field -> the environment variables that set it (any of them set locks the field).
ENVIRONMENT = {
    "shop_name": ("MERCHANT_NAME",),
    "currency": ("MERCHANT_CURRENCY",),
    "language": ("MERCHANT_LANGUAGE",),
    "timezone": ("MERCHANT_TIMEZONE",),
    "mail_server": ("MAIL_SERVER",),
    "mail_port": ("MAIL_PORT",),
    "mail_security": ("MAIL_USE_TLS", "MAIL_USE_SSL"),
    "mail_username": ("MAIL_USERNAME",),
    "mail_password": ("MAIL_PASSWORD",),
    "mail_sender": ("MAIL_DEFAULT_SENDER",),
}
FIELDS = tuple(ENVIRONMENT)


@dataclass(frozen=True)
class Preset:
    name: str
    label: object  # a lazy translation
    host: str
    port: int
    security: str


# Mail services common among Chinese merchants first. QQ and 163 need an authorisation code
# (授权码) generated in their web mail, not the login password.
PRESETS = (
    Preset("qq", _l("QQ Mail"), "smtp.qq.com", 465, SSL),
    Preset("163", _l("163 Mail"), "smtp.163.com", 465, SSL),
    Preset("aliyun", _l("Aliyun enterprise mail"), "smtp.qiye.aliyun.com", 465, SSL),
    Preset("exmail", _l("Tencent Exmail"), "smtp.exmail.qq.com", 465, SSL),
    Preset("gmail", "Gmail", "smtp.gmail.com", 587, STARTTLS),
    Preset("outlook", "Outlook", "smtp.office365.com", 587, STARTTLS),
)
PRESETS_BY_NAME = {preset.name: preset for preset in PRESETS}

# Currencies offered first: the ones a Chinese merchant most often sells in.
COMMON_CURRENCIES = ("CNY", "USD", "EUR", "HKD", "TWD", "MOP", "JPY", "KRW", "SGD", "GBP", "AUD", "CAD")
HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
                      r"|^\[?[0-9A-Fa-f:.]+\]?$")


@dataclass(frozen=True)
class MailServer:
    """The SMTP server of the Email method, as the transport needs it."""
    host: str
    port: int
    security: str  # NONE, STARTTLS or SSL
    username: str | None
    password: str | None
    sender: str
    timeout: float = 10.0

    def describe(self) -> str:
        """Which server is in use, for pages and attempts: never the password."""
        user = f"{self.username}@" if self.username else ""
        label = {SSL: "SSL", STARTTLS: "STARTTLS"}.get(self.security, "")
        return " ".join(part for part in (f"smtp://{user}{self.host}:{self.port}", label) if part)


@dataclass(frozen=True)
class ShopSettings:
    shop_name: str
    currency: str
    language: str  # a catalogue name: en or zh_CN
    timezone: str  # an IANA name
    mail: MailServer
    # Fields set by the environment, each with the variable that sets it.
    locked: dict

    def locked_by(self, field: str) -> str | None:
        return self.locked.get(field)


def locked_fields(config) -> dict[str, str]:
    """{field: the environment variable that sets it} for the fields the environment locks."""
    present = set(config.get("SETTINGS_FROM_ENVIRONMENT") or ())
    found = {}
    for field, names in ENVIRONMENT.items():
        name = next((n for n in names if n in present), None)
        if name:
            found[field] = name
    return found


_cache_lock = threading.Lock()
_reads = itertools.count(1)


def _stored_read(app) -> tuple[int, dict[str, str]]:
    """(a number identifying this read, the saved `general.*` rows of this app's database), read
    at most every CACHE_SECONDS."""
    cached = app.extensions.get("merchant_notify.shop_settings")
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    with _cache_lock:
        cached = app.extensions.get("merchant_notify.shop_settings")
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        rows = db.session.execute(select(Setting.key, Setting.value).where(Setting.key.like(PREFIX + "%"))).all()
        values = {key[len(PREFIX):]: value for key, value in rows}
        read = next(_reads)
        app.extensions["merchant_notify.shop_settings"] = (now + CACHE_SECONDS, read, values)
        return read, values


def _stored(app) -> dict[str, str]:
    return _stored_read(app)[1]


def forget_cache(app=None) -> None:
    (app or current_app._get_current_object()).extensions.pop("merchant_notify.shop_settings", None)


def _security_from_config(config) -> str:
    return SSL if config["MAIL_USE_SSL"] else (STARTTLS if config["MAIL_USE_TLS"] else NONE)


def defaults(config) -> dict:
    """What applies where the merchant saved nothing: the environment or the built-in default."""
    return {
        "shop_name": config["MERCHANT_NAME"], "currency": config["MERCHANT_CURRENCY"],
        "language": config["MERCHANT_LANGUAGE"], "timezone": config["MERCHANT_TIMEZONE"],
        "mail_server": config["MAIL_SERVER"], "mail_port": config["MAIL_PORT"],
        "mail_security": _security_from_config(config), "mail_username": config["MAIL_USERNAME"],
        "mail_password": config["MAIL_PASSWORD"], "mail_sender": config["MAIL_DEFAULT_SENDER"],
    }


_CONFIG_KEYS = ("MERCHANT_NAME", "MERCHANT_CURRENCY", "MERCHANT_LANGUAGE", "MERCHANT_TIMEZONE", "MAIL_SERVER",
                "MAIL_PORT", "MAIL_USE_TLS", "MAIL_USE_SSL", "MAIL_USERNAME", "MAIL_PASSWORD", "MAIL_DEFAULT_SENDER",
                "MAIL_TIMEOUT")


def effective(app=None) -> ShopSettings:
    """The settings in force now, by the precedence rule of this module's docstring."""
    app = app or current_app._get_current_object()
    config = app.config
    read, stored = _stored_read(app)
    # The merge is kept while neither the rows nor the config change: it is asked for several
    # times per delivery (language, time zone, shop name, mail server).
    key = (read, tuple(config.get(name) for name in _CONFIG_KEYS),
           tuple(config.get("SETTINGS_FROM_ENVIRONMENT") or ()))
    merged = app.extensions.get("merchant_notify.shop_settings.merged")
    if merged is not None and merged[0] == key:
        return merged[1]
    settings = _merge(config, stored)
    app.extensions["merchant_notify.shop_settings.merged"] = (key, settings)
    return settings


def _merge(config, stored: dict) -> ShopSettings:
    values = defaults(config)
    locked = locked_fields(config)
    for field, raw in stored.items():
        if field in values and field not in locked:
            values[field] = _parse(field, raw)
    mail = MailServer(host=values["mail_server"], port=int(values["mail_port"]), security=values["mail_security"],
                      username=values["mail_username"] or None, password=values["mail_password"] or None,
                      sender=values["mail_sender"], timeout=config["MAIL_TIMEOUT"])
    return ShopSettings(shop_name=values["shop_name"], currency=values["currency"], language=values["language"],
                        timezone=values["timezone"], mail=mail, locked=locked)


def _parse(field: str, raw: str):
    if field == "mail_port":
        try:
            return int(raw)
        except ValueError:
            return 25
    return raw


def timezone_names() -> list[str]:
    return sorted(available_timezones())


def currency_codes() -> list[str]:
    from babel.numbers import list_currencies

    rest = sorted(code for code in list_currencies() if code not in COMMON_CURRENCIES)
    return list(COMMON_CURRENCIES) + rest


def current_values(settings: ShopSettings) -> dict:
    """The effective settings as the page's fields hold them (the password aside)."""
    return {"shop_name": settings.shop_name, "currency": settings.currency, "language": settings.language,
            "timezone": settings.timezone, "mail_server": settings.mail.host, "mail_port": str(settings.mail.port),
            "mail_security": settings.mail.security, "mail_username": settings.mail.username or "",
            "mail_sender": settings.mail.sender}


def changed(values: dict, settings: ShopSettings) -> dict:
    """The values that differ from what is in force. Only those are checked and stored: a field
    left as it was keeps following its default (the built-in `merchant-notify@localhost` sender,
    which is not a deliverable address, does not stop the merchant from renaming the shop)."""
    current = current_values(settings)
    return {field: value for field, value in values.items()
            if field not in current or str(value if value is not None else "").strip() != str(current[field])}


def clean(values: dict) -> tuple[dict, dict]:
    """Check what the merchant typed: (the values to store, {field: error}). Only the fields
    present in `values` are checked; the errors are in the current locale."""
    cleaned, errors = {}, {}
    if "shop_name" in values:
        name = " ".join(str(values["shop_name"] or "").split())
        if not name:
            errors["shop_name"] = _l("Enter the shop's name.")
        elif len(name) > 100:
            errors["shop_name"] = _l("At most %(n)d characters.", n=100)
        cleaned["shop_name"] = name
    if "currency" in values:
        code = str(values["currency"] or "").strip().upper()
        if code not in currency_codes():
            errors["currency"] = _l("Choose an ISO 4217 currency code, such as CNY.")
        cleaned["currency"] = code
    if "language" in values:
        if values["language"] not in LANGUAGES:
            errors["language"] = _l("Choose English or Chinese.")
        cleaned["language"] = values["language"]
    if "timezone" in values:
        tz = str(values["timezone"] or "").strip()
        try:
            ZoneInfo(tz)
            if tz not in available_timezones():
                raise ValueError(tz)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = _l("Choose a time zone from the list, such as Asia/Shanghai.")
        cleaned["timezone"] = tz
    if "mail_server" in values:
        host = str(values["mail_server"] or "").strip()
        if not host:
            errors["mail_server"] = _l("Enter the mail server's host name, such as smtp.qq.com.")
        elif not HOSTNAME.match(host):
            errors["mail_server"] = _l("A host name has letters, digits, dots and hyphens only, such as smtp.qq.com.")
        cleaned["mail_server"] = host
    if "mail_port" in values:
        try:
            port = int(values["mail_port"])
        except (TypeError, ValueError):
            port = 0
        if not 1 <= port <= 65535:
            errors["mail_port"] = _l("The port is a number from 1 to 65535 (usually 465 for SSL, 587 for STARTTLS).")
        cleaned["mail_port"] = port
    if "mail_security" in values:
        if values["mail_security"] not in SECURITIES:
            errors["mail_security"] = _l("Choose none, STARTTLS or SSL.")
        cleaned["mail_security"] = values["mail_security"]
    if "mail_username" in values:
        user = str(values["mail_username"] or "").strip()
        if len(user) > 254:
            errors["mail_username"] = _l("At most %(n)d characters.", n=254)
        cleaned["mail_username"] = user
    if "mail_password" in values:
        password = values["mail_password"]  # None keeps the stored one (see `save`)
        if password is not None and len(password) > 200:
            errors["mail_password"] = _l("At most %(n)d characters.", n=200)
        cleaned["mail_password"] = password
    if "mail_sender" in values:
        address, problem = check_address(values["mail_sender"])
        if problem:
            errors["mail_sender"] = problem
        cleaned["mail_sender"] = address
    return cleaned, errors


def check_address(raw) -> tuple[str, str | None]:
    """(the normalised address, None) or (what was typed, a translated explanation)."""
    text = str(raw or "").strip()
    if not text:
        return text, str(_l("Enter an email address, such as shop@example.com."))
    try:
        return validate_email(text, check_deliverability=False).normalized, None
    except EmailNotValidError:
        return text, str(_l("%(address)s is not a valid email address (it should look like shop@example.com).",
                            address=text))


def save(values: dict) -> None:
    """Store cleaned values (from `clean`), leaving out the fields the environment locks; not
    committed. A `mail_password` of None keeps the stored one; "" clears it."""
    locked = locked_fields(current_app.config)
    for field, value in values.items():
        if field not in FIELDS or field in locked or (field == "mail_password" and value is None):
            continue
        setting = db.session.get(Setting, PREFIX + field) or Setting(key=PREFIX + field)
        setting.value = str(value)
        db.session.add(setting)
    forget_cache()


def stored_password_exists() -> bool:
    return bool(_stored(current_app._get_current_object()).get("mail_password"))


def reset() -> None:
    """Forget everything saved (tests, and an operator starting over); not committed."""
    db.session.execute(delete(Setting).where(Setting.key.like(PREFIX + "%")))
    forget_cache()


def first_run_defaults(locale: str) -> None:
    """A merchant whose first page was in Chinese gets messages in Chinese, in Beijing time, unless
    the environment says otherwise or they choose otherwise later; not committed."""
    if str(locale).startswith("zh"):
        save({"language": "zh_CN", "timezone": "Asia/Shanghai"})
