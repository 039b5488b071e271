"""merchant-notify: the application factory. `flask --app app run` serves the admin."""
from __future__ import annotations

import logging
import os
from decimal import Decimal
from pathlib import Path

from dotenv import load_dotenv
from flask import Flask, current_app, has_request_context, render_template, request, session
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from extensions import babel, csrf, db, limiter, login, mail, migrate

ROOT = Path(__file__).resolve().parent


def select_locale() -> str:
    """The admin follows the browser (or the merchant's choice); workers write in the merchant's language."""
    from flask import current_app

    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        from notify import shop_settings

        return shop_settings.effective().language
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone() -> str:
    """Pages show times in the shop's time zone (Settings › General)."""
    from notify import shop_settings

    return shop_settings.effective().timezone


# Each language named in itself, for the switch on every page.
LANGUAGE_NAMES = {"en": "English", "zh_CN": "中文"}


def remember_language():
    """`?lang=zh_CN` on any page switches the interface language and remembers it (a long-lived
    session cookie), before and after logging in."""
    chosen = request.args.get("lang")
    if chosen in current_app.config["LANGUAGES"]:
        session["lang"] = chosen
        session.permanent = True


# No inline script or style anywhere (static/app.js and static/app.css carry them), so the policy
# needs no 'unsafe-inline': an injected <script> or style attribute does nothing. `data:` images
# for the browser's own form controls; no framing (clickjacking); forms post only here.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    # Admin URLs (delivery ids, filters) are nobody else's business.
    "Referrer-Policy": "same-origin",
}


def add_security_headers(response):
    """Every response (pages, API, static files, errors) carries the headers; a view may set its own."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


# What an error page says, by status code: a title and a sentence in the merchant's words.
ERROR_TEXTS = {
    400: (_l("Bad request"), _l("The request could not be understood. If you sent a form, open its page again and retry.")),
    401: (_l("Not logged in"), _l("This address needs credentials.")),
    403: (_l("Forbidden"), _l("You may not see this page.")),
    404: (_l("Page not found"), _l("There is no page at this address: the link may be mistyped, or what it pointed to "
                                    "was deleted.")),
    405: (_l("Not allowed"), _l("This address does not accept that kind of request.")),
    413: (_l("Too large"), _l("What you sent is larger than this server accepts.")),
    429: (_l("Too many requests"), _l("Wait a moment, then try again.")),
    500: (_l("Something went wrong"), _l("The server could not finish this request. It is in the server's log; try "
                                         "again, and if it keeps happening, look there.")),
}
CSRF_TEXT = (_l("The form has expired"), _l("Go back, reload the page and send the form again."))


def error_page(exc: HTTPException):
    """Every HTTP error of the admin (a 404, a 405, an expired form, a crash as a 500) is a page in
    the product's look and the page's language, with a way home. API paths (/api/…) answer the API's
    JSON error instead, whatever the error: a shop's client reads JSON."""
    if request.path.startswith("/api/"):
        from blueprints.api import http_error

        return http_error(exc)
    if exc.response is not None:  # a view or extension built its own answer
        return exc.response
    code = exc.code or 500
    title, message = CSRF_TEXT if isinstance(exc, CSRFError) else ERROR_TEXTS.get(code, (exc.name, ""))
    headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    if isinstance(exc, InternalServerError):
        # The database may be what failed: give the page a clean session to read the user and the
        # settings with, and if even that fails, a page that needs neither.
        db.session.rollback()
        try:
            return render_template("errors/error.html", code=code, title=title, message=message), code, headers
        except Exception:
            current_app.logger.exception("the error page itself failed; answering the bare one")
            return render_template("errors/bare.html", code=code, title=title, message=message), code, headers
    return render_template("errors/error.html", code=code, title=title, message=message), code, headers


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app. `test_config` overrides what the environment says (tests, the worker CLI)."""
    load_dotenv(ROOT / ".env")
    instance_path = os.environ.get("INSTANCE_PATH") or str(ROOT / "instance")
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)

    from config import load_config

    app.config.update(load_config(app.instance_path))
    if test_config:
        app.config.update(test_config)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    login.init_app(app)
    csrf.init_app(app)
    mail.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", _limiter_storage_uri(app))
    # Short timeouts: a Redis that hangs delays a login by a second or two (the check, the count), then
    # it goes through.
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 1, "socket_timeout": 1})
    limiter.init_app(app)
    # The only limits are the ones decorating the auth views, which check in their own wrapper;
    # Flask-Limiter's check before every request (for app-wide limits, of which there are none)
    # would cost each events API call about 15 µs for nothing.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone,
                   default_translation_directories=str(ROOT / "translations"))
    # WTForms' own messages ("This field is required.", "Not a valid choice.") in the page's
    # language: Flask-WTF loads the catalogues WTForms ships (its `zh` one for zh_Hans_CN) for the
    # locale Flask-Babel selected. On by default; said here so that nobody turns it off unawares.
    app.config.setdefault("WTF_I18N_ENABLED", True)
    from flask_babel import format_currency, format_datetime, get_locale

    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals["LANGUAGE_NAMES"] = LANGUAGE_NAMES
    # Times on pages: the merchant's time zone, the page's language conventions.
    app.jinja_env.filters["when"] = lambda moment, pattern="yyyy-MM-dd HH:mm:ss": (
        format_datetime(moment, pattern) if moment else "")
    app.jinja_env.globals["money"] = lambda amount, currency: format_currency(Decimal(str(amount)), currency)
    app.before_request(remember_language)
    app.after_request(add_security_headers)

    import models  # noqa: F401  (registers the tables with SQLAlchemy and Alembic)
    from blueprints import register_blueprints
    from cli import register_cli
    from notify import channels

    channels.init_app(app)
    register_blueprints(app)
    register_cli(app)
    app.register_error_handler(HTTPException, error_page)
    # Browsers that ignore <link rel="icon"> ask for /favicon.ico: the same SVG, rather than a 404.
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.svg"))
    _configure_sqlite(app)
    return app


def _limiter_storage_uri(app: Flask) -> str:
    """The login limiter counts in the app's Redis (REDIS_URL, else the embedded one under the
    instance folder, whose socket is known without starting it: nothing starts in create_app;
    until something starts it, the limiter logs and lets logins through)."""
    url = app.config.get("REDIS_URL") or f"unix://{Path(app.instance_path).resolve() / 'redis' / 'redis.sock'}"
    # The limits library names Unix sockets redis+unix://; redis-py, unix://.
    return "redis+unix://" + url[len("unix://"):] if url.startswith("unix://") else url


def _configure_sqlite(app: Flask) -> None:
    """WAL and a busy timeout: the admin, the API and the workers write the same SQLite file."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL is still safe against crashes of the application; only a power
        # loss can undo the last commits. It saves an fsync per commit, which is most of the
        # cost of recording an attempt.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
