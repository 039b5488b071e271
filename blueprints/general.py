"""Settings › Configuration › General: the shop's name, currency, language of messages, time zone
and mail server, and "Send test email". The rules live in notify/shop_settings.py."""
from __future__ import annotations

from babel.numbers import get_currency_name
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import login_required
from wtforms import SelectChoice

from extensions import db
from forms import GeneralSettingsForm
from notify import shop_settings, signing
from notify.channels.email.transport import send_test_email

bp = Blueprint("general", __name__, url_prefix="/settings/general")


@bp.before_request
@login_required
def require_login():
    return None


@bp.app_template_global()
def shop() -> shop_settings.ShopSettings:
    """The effective settings, for templates (the footer's time zone, the mail server line)."""
    return shop_settings.effective()


def _choices(form: GeneralSettingsForm) -> None:
    """The lists, in the page's language: common currencies first; Asia/Shanghai first in Chinese."""
    locale = str(get_locale())
    if "currency" in form:
        form.currency.choices = [SelectChoice(code, f"{code} — {get_currency_name(code, locale=locale)}")
                                 for code in shop_settings.currency_codes()]
    if "timezone" in form:
        names = shop_settings.timezone_names()
        first = ["Asia/Shanghai"] if locale.startswith("zh") else ["UTC"]
        form.timezone.choices = first + [name for name in names if name not in first]
    form.mail_preset.choices = [SelectChoice("", _("Other (type the server below)"))] + [
        SelectChoice(p.name, str(p.label), render_kw={"data-host": p.host, "data-port": str(p.port),
                                                      "data-security": p.security})
        for p in shop_settings.PRESETS]


def _render(form, settings):
    return render_template("general/index.html", form=form, settings=settings, presets=shop_settings.PRESETS,
                           password_mask=signing.mask(settings.mail.password) if settings.mail.password else "",
                           stored_password=shop_settings.stored_password_exists())


@bp.route("/", methods=["GET", "POST"])
def index():
    settings = shop_settings.effective()
    form = GeneralSettingsForm()
    _choices(form)
    form.lock(settings.locked)
    if request.method == "GET":
        form.load(settings)
        form.test_to.data = request.args.get("test_to") or settings.mail.sender
        return _render(form, settings)
    # Which button was pressed: Save (also Enter in a field), Use (a preset) or Save and send test email.
    action = "preset" if "use_preset" in request.form else "test" if "send_test" in request.form else "save"
    if action == "preset":
        return _apply_preset(form, settings)
    if not form.validate_on_submit():
        return _render(form, settings)
    cleaned, errors = shop_settings.clean(shop_settings.changed(form.values(), settings))
    to = None
    if action == "test":
        to, problem = shop_settings.check_address(form.test_to.data or cleaned.get("mail_sender")
                                                  or settings.mail.sender)
        if problem:
            errors["test_to"] = problem
    if errors:
        for name, message in errors.items():
            form[name].errors = list(form[name].errors) + [str(message)]
        return _render(form, settings)
    shop_settings.save(cleaned)
    db.session.commit()
    if action != "test":
        flash(_("Settings saved."), "success")
        return redirect(url_for("general.index"))
    outcome = send_test_email(to)
    server = shop_settings.effective().mail.describe()
    if outcome.kind == "success":
        flash(_("Settings saved. A test email was sent to %(to)s through %(server)s (%(ms)d ms): check that it "
                "arrived, in the spam folder too.", to=to, server=server, ms=outcome.duration_ms or 0), "success")
    else:
        flash(_("Settings saved, but the test email to %(to)s was not sent. %(error)s", to=to,
                error=outcome.error), "danger")
    return redirect(url_for("general.index", test_to=to) + "#mail")


def _apply_preset(form, settings):
    """Without JavaScript, "Use" fills in a preset's host, port and security (nothing is saved)."""
    preset = shop_settings.PRESETS_BY_NAME.get(form.mail_preset.data or "")
    if preset is not None:
        for name, value in (("mail_server", preset.host), ("mail_port", str(preset.port)),
                            ("mail_security", preset.security)):
            if name in form:
                form[name].data = value
                form[name].raw_data = [value]
        flash(_("Filled in for %(service)s. Enter the user and the password or authorisation code, then save.",
                service=preset.label), "info")
    return _render(form, settings)
