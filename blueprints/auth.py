"""Log in, log out, change the password, and the first-run page that creates the admin account."""
from __future__ import annotations

import hashlib
import math
import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_limiter import RateLimitExceeded
from flask_login import current_user, login_required, login_user, logout_user

from extensions import db, limiter, login
from forms import LoginForm, PasswordChangeForm, SetupForm
from models import User
from notify import shop_settings

bp = Blueprint("auth", __name__)

login.login_view = "auth.login_page"
login.login_message = None  # the login page says it itself; a flash on top would repeat it


@login.user_loader
def load_user(session_id: str):
    # The session version in the id ends copied cookies at logout and at a password change.
    return User.from_session(session_id)


# -- throttling password guesses ------------------------------------------------------------
# Only failures count (a wrong password, a refused setup form): `failed()` marks the request and
# Flask-Limiter deducts after the response. Before the view runs, a username or an address with
# LOGIN_FAILURES_PER_… failures in the last LOGIN_FAILURE_WINDOW seconds gets a 429, whatever it
# sends. Keys carry RQ_QUEUE, like the app's other Redis keys, so two installs sharing a Redis
# (and the tests) keep separate counts.

def failed() -> None:
    """Count this request as a failed attempt against its username and address."""
    g.auth_failed = True


def _counts_as_failure(_response) -> bool:
    return g.get("auth_failed", False)


def _key(kind: str, value: str) -> str:
    # Hashed: the typed username is anyone's input, of any length and alphabet.
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]
    return f"{current_app.config['RQ_QUEUE']}:{kind}:{digest}"


def _username_key() -> str:
    """The account being guessed: the one logged in (password change) or the one typed."""
    if current_user.is_authenticated:
        name = current_user.username
    else:
        name = (request.form.get("username") or "").strip()[:80]
    return _key("username", name.lower())


def _address_key() -> str:
    return _key("address", request.remote_addr or "unknown")


def _per(setting: str):
    return lambda: f"{current_app.config[setting]} per {current_app.config['LOGIN_FAILURE_WINDOW']} seconds"


failures_per_username = limiter.shared_limit(_per("LOGIN_FAILURES_PER_USERNAME"), scope="auth-username",
                                             key_func=_username_key, methods=["POST"], deduct_when=_counts_as_failure)
failures_per_address = limiter.shared_limit(_per("LOGIN_FAILURES_PER_ADDRESS"), scope="auth-address",
                                            key_func=_address_key, methods=["POST"], deduct_when=_counts_as_failure)


# Where a refused attempt shows its reason: the form, the field and the page.
_THROTTLED_PAGES = {
    "auth.login_page": (LoginForm, "password", "auth/login.html"),
    "auth.setup": (SetupForm, "password", "auth/setup.html"),
    "auth.change_password": (PasswordChangeForm, "current", "auth/password.html"),
}


@bp.errorhandler(RateLimitExceeded)
def too_many_failures(_exc):
    """The page again, the reason next to its field, 429, and when to try again (Retry-After)."""
    limit = limiter.current_limit
    # The moment the oldest counted failure leaves the window (RequestLimit.reset_at rounds up).
    wait = max(1, math.ceil(limit.window[0] - time.time())) if limit else current_app.config["LOGIN_FAILURE_WINDOW"]
    minutes = math.ceil(wait / 60)
    form_class, field_name, template = _THROTTLED_PAGES[request.endpoint]
    form = form_class()
    getattr(form, field_name).errors = [ngettext("Too many failed attempts. Try again in %(num)d minute.",
                                                 "Too many failed attempts. Try again in %(num)d minutes.", minutes)]
    return render_template(template, form=form), 429, {"Retry-After": str(wait)}


def has_admin() -> bool:
    return db.session.scalar(db.select(User.id).limit(1)) is not None


@bp.before_app_request
def first_run():
    """Until an admin exists, every admin page leads to the setup page."""
    if request.endpoint in (None, "static", "favicon", "auth.setup", "metrics.scrape") or request.blueprint in ("api", "shop_api"):
        return None
    if not has_admin():
        return redirect(url_for("auth.setup"))
    return None


def _safe_next(target: str | None) -> str:
    # Only same-site paths: `next` must not turn the login page into an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("notifications.index")


@bp.route("/setup", methods=["GET", "POST"])
@failures_per_address
def setup():
    if has_admin():
        return redirect(url_for("auth.login_page"))
    form = SetupForm()
    if form.validate_on_submit():
        user = User(username=form.username.data.strip())
        user.set_password(form.password.data)
        db.session.add(user)
        # First run in Chinese: messages in Chinese, in Beijing time (Settings › General changes it).
        shop_settings.first_run_defaults(str(get_locale()))
        db.session.commit()
        login_user(user)
        flash(_("Welcome! Your admin account is ready. Add a notification method to get started."), "success")
        return redirect(url_for("notifications.index"))
    if request.method == "POST":
        failed()
    return render_template("auth/setup.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
@failures_per_username
@failures_per_address
def login_page():
    if current_user.is_authenticated:
        return redirect(url_for("notifications.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = User.authenticate(form.username.data.strip(), form.password.data)
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        failed()
        form.password.errors.append(_("Wrong username or password."))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    # Every session of this admin ends, not only this browser's: a copy of the cookie taken
    # before (another device, a stolen one) is worth nothing afterwards.
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    flash(_("You are logged out."), "info")
    return redirect(url_for("auth.login_page"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@failures_per_username
@failures_per_address
def change_password():
    """Current password, new one twice. Every other session of this admin ends; this one goes on."""
    form = PasswordChangeForm()
    user = current_user._get_current_object()
    if form.validate_on_submit():
        if not user.check_password(form.current.data):
            failed()
            form.current.errors.append(_("This is not your current password."))
        else:
            user.set_password(form.password.data)
            db.session.commit()
            login_user(user)  # this session, under the new session version
            flash(_("Your password is changed. Every other session was logged out."), "success")
            return redirect(url_for("dashboard.index"))
    return render_template("auth/password.html", form=form)


@bp.route("/")
def home():
    return redirect(url_for("dashboard.index"))
