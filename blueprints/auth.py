"""Log in, log out, and the first-run page that creates the admin account."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from extensions import db, login
from forms import LoginForm, SetupForm
from models import User
from notify import shop_settings

bp = Blueprint("auth", __name__)

login.login_view = "auth.login_page"
login.login_message = None  # the login page says it itself; a flash on top would repeat it


@login.user_loader
def load_user(user_id: str):
    return db.session.get(User, int(user_id))


def has_admin() -> bool:
    return db.session.scalar(db.select(User.id).limit(1)) is not None


@bp.before_app_request
def first_run():
    """Until an admin exists, every admin page leads to the setup page."""
    if request.endpoint in (None, "static", "auth.setup", "metrics.scrape") or request.blueprint in ("api", "shop_api"):
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
    return render_template("auth/setup.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
def login_page():
    if current_user.is_authenticated:
        return redirect(url_for("notifications.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(db.select(User).filter_by(username=form.username.data.strip()))
        if user is not None and user.check_password(form.password.data):
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append(_("Wrong username or password."))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash(_("You are logged out."), "info")
    return redirect(url_for("auth.login_page"))


@bp.route("/")
def home():
    return redirect(url_for("dashboard.index"))
