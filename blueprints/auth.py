"""Log in, log out, change the password, and the first-run page that creates the admin account."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from extensions import db, login
from forms import LoginForm, PasswordChangeForm, SetupForm
from models import User

bp = Blueprint("auth", __name__)

login.login_view = "auth.login_page"
login.login_message = None  # the login page says it itself; a flash on top would repeat it


@login.user_loader
def load_user(session_id: str):
    # The session version in the id ends copied cookies at logout and at a password change.
    return User.from_session(session_id)


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
        user = User.authenticate(form.username.data.strip(), form.password.data)
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
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
def change_password():
    """Current password, new one twice. Every other session of this admin ends; this one goes on."""
    form = PasswordChangeForm()
    user = current_user._get_current_object()
    if form.validate_on_submit():
        if not user.check_password(form.current.data):
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
