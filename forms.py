"""Flask-WTF forms for the admin. Field rules that also apply to imports and the API live in the
domain (the transports' `validate`); the forms show those messages next to the field. Each channel
kind's own form lives in its folder (`notify/channels/<kind>/form.py`), built on `ChannelForm`."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (BooleanField, PasswordField, RadioField, SelectChoice, SelectField, SelectMultipleField,
                     StringField)
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from notify import hooks, rules


class ActionForm(FlaskForm):
    """No fields: carries the CSRF token of a small POST button (delete, revoke, regenerate)."""


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=80)])
    password = PasswordField(_l("Password"), validators=[DataRequired()])


class SetupForm(FlaskForm):
    username = StringField(_l("Username"), validators=[
        DataRequired(), Length(max=80),
        Regexp(r"^[\w.@+-]+$", message=_l("Use letters, digits and . @ + - _ only.")),
    ])
    password = PasswordField(_l("Password"), validators=[
        DataRequired(), Length(min=8, message=_l("Use at least 8 characters."))])
    confirm = PasswordField(_l("Repeat the password"), validators=[
        DataRequired(), EqualTo("password", message=_l("The two passwords differ."))])


class PasswordChangeForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired()],
                            render_kw={"autocomplete": "current-password"})
    password = PasswordField(_l("New password"), validators=[
        DataRequired(), Length(min=8, message=_l("Use at least 8 characters."))],
        render_kw={"autocomplete": "new-password"})
    confirm = PasswordField(_l("Repeat the new password"), validators=[
        DataRequired(), EqualTo("password", message=_l("The two passwords differ."))],
        render_kw={"autocomplete": "new-password"})


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def hook_choices() -> list[SelectChoice]:
    """The nine hooks as options, labelled in the current request's language: call it per form,
    never at import time (a label formatted then stays in the default language)."""
    return [SelectChoice(h.name, f"{h.label} ({h.name})", optgroup=hooks.GROUP_LABELS[h.group]) for h in hooks.HOOKS]


def product_choices(limit: int = 200) -> list[SelectChoice]:
    """The ledger's products as options ("VPN Monthly Plan (vpnmonthly)"), by path."""
    from extensions import db
    from models import Product

    rows = db.session.execute(db.select(Product.path, Product.name).order_by(Product.path).limit(limit)).all()
    return [SelectChoice(row.path, f"{row.name} ({row.path})") for row in rows]


# Where each error of notify.rules.clean is shown.
RULE_FIELDS = {"min_amount": "rules_min_amount", "products": "rules_product_paths", "tests": "rules_skip_tests",
               "quiet_from": "quiet_from", "quiet_to": "quiet_to", "quiet_urgent": "quiet_urgent"}


class ChannelForm(FlaskForm):
    """What every channel form has: a description, the events, enabled, and the filters and quiet
    hours (notify.rules, one fieldset for every kind: templates/notifications/_rules.html). Each kind
    adds its own fields and says how they make the channel's `config`; the kind's transport
    validates them, so the form, the settings import and the CLI apply the same rules."""

    transport = None  # the kind's Transport class
    description = StringField(_l("Description"), validators=[Optional(), Length(max=200)])
    hooks = MultiCheckboxField(_l("Events"), choices=[])
    enabled = BooleanField(_l("Enabled"), default=True)
    rules_min_amount = StringField(_l("Only orders of at least"), render_kw={
        "inputmode": "decimal", "autocomplete": "off", "placeholder": "100.00", "size": 12})
    rules_products = MultiCheckboxField(_l("Only these products"), choices=[])
    rules_product_paths = StringField(_l("Other product paths"), render_kw={
        "autocomplete": "off", "spellcheck": "false", "placeholder": "vpnmonthly, vpnyearly"})
    rules_skip_tests = BooleanField(_l("Leave out test events (sent by the shop with \"test\": true)"))
    quiet_from = StringField(_l("Quiet from"), render_kw={"type": "time", "placeholder": "22:00"})
    quiet_to = StringField(_l("Quiet until"), render_kw={"type": "time", "placeholder": "08:00"})
    quiet_urgent = MultiCheckboxField(_l("Urgent events: sent at once even in quiet hours"), choices=[],
                                      default=list(rules.DEFAULT_URGENT))

    def __init__(self, *args, channel=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hooks.choices = hook_choices()
        self.quiet_urgent.choices = hook_choices()
        self.rules_products.choices = product_choices()
        self.channel = channel

    def load(self, channel) -> None:
        """Fill the form from a saved channel (GET of the edit page)."""
        self.description.data = channel.description
        self.hooks.data = list(channel.hooks)
        self.enabled.data = channel.enabled
        saved = channel.rules if isinstance(channel.rules, dict) else {}
        self.rules_min_amount.data = saved.get("min_amount") or ""
        known = {choice.value for choice in self.rules_products.choices}
        products = [p for p in saved.get("products") or [] if isinstance(p, str)]
        self.rules_products.data = [p for p in products if p in known]
        self.rules_product_paths.data = ", ".join(p for p in products if p not in known)
        self.rules_skip_tests.data = saved.get("tests") is False
        quiet = saved.get("quiet") if isinstance(saved.get("quiet"), dict) else {}
        self.quiet_from.data = quiet.get("from") or ""
        self.quiet_to.data = quiet.get("to") or ""
        self.quiet_urgent.data = list(quiet["urgent"]) if isinstance(quiet.get("urgent"), list) \
            else list(rules.DEFAULT_URGENT)

    def rules_value(self) -> dict:
        """The filters and quiet hours as typed, in notify.rules's shape (it checks and cleans them)."""
        return {"min_amount": (self.rules_min_amount.data or "").strip(),
                "products": list(self.rules_products.data or []) + rules.split_paths(self.rules_product_paths.data or ""),
                "tests": not self.rules_skip_tests.data,
                "quiet": {"from": (self.quiet_from.data or "").strip(), "to": (self.quiet_to.data or "").strip(),
                          "urgent": list(self.quiet_urgent.data or [])}}

    def config(self) -> dict:
        raise NotImplementedError

    def effective_secret(self) -> str | None:
        return None

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for field_name, message in self.transport.validate(self.config(), self.effective_secret()).items():
            self.error_field(field_name).errors.append(message)
            ok = False
        if not self.hooks.data:
            self.hooks.errors.append(str(_l("Choose at least one event.")))
            ok = False
        for name, message in rules.clean(self.rules_value())[1].items():
            self.error_field(RULE_FIELDS[name]).errors.append(message)
            ok = False
        return ok

    def error_field(self, name: str):
        if name.startswith("rules."):  # as notify.channels.apply names them
            name = RULE_FIELDS.get(name[len("rules."):], "rules_min_amount")
        return getattr(self, name)


class ReportTimeForm(FlaskForm):
    time = StringField(_l("Send the daily report at"), validators=[
        DataRequired(), Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", message=_l("Use HH:MM, from 00:00 to 23:59."))],
        render_kw={"type": "time", "required": True})


class RotateForm(FlaskForm):
    window = SelectField(_l("Keep the old secret signing for"), default="24", choices=[
        SelectChoice("0", _l("no time: switch at once (the old secret leaked)")), SelectChoice("1", _l("1 hour")),
        SelectChoice("24", _l("24 hours")), SelectChoice("72", _l("3 days"))])


class TestForm(FlaskForm):
    hook = SelectField(_l("Event to send"), choices=[], default="order_pay_hook")
    # Robots only: a Test mentions nobody unless asked (a robot set to @all would ping the group).
    mentions = BooleanField(_l("Also @mention as configured"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hook.choices = hook_choices()


class TokenForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=80)],
                       render_kw={"placeholder": _l("e.g. my-shop")})


class SettingsImportForm(FlaskForm):
    file = FileField(_l("Settings file"), validators=[FileRequired(_l("Choose a settings file (JSON) to import."))],
                     render_kw={"accept": "application/json,.json"})
    replace = BooleanField(_l("Also delete the channels that are not in the file"))


class GeneralSettingsForm(FlaskForm):
    """Settings › Configuration › General. The domain (notify/shop_settings.py) checks the values;
    fields the environment locks are removed from the form (`lock`) and shown read-only."""

    shop_name = StringField(_l("Shop name"), render_kw={"maxlength": 100, "autocomplete": "organization"})
    currency = SelectField(_l("Currency"), validate_choice=False)
    language = SelectField(_l("Language of messages"), validate_choice=False, choices=[
        SelectChoice("en", "English"), SelectChoice("zh_CN", "简体中文")])
    timezone = SelectField(_l("Time zone"), validate_choice=False)
    mail_preset = SelectField(_l("Mail service"), validate_choice=False)
    mail_server = StringField(_l("SMTP host"), render_kw={"autocomplete": "off", "spellcheck": "false",
                                                          "placeholder": "smtp.qq.com"})
    mail_port = StringField(_l("Port"), render_kw={"inputmode": "numeric", "autocomplete": "off", "size": 6})
    mail_security = RadioField(_l("Security"), validate_choice=False, choices=[
        SelectChoice("ssl", _l("SSL (implicit TLS, usually port 465)")),
        SelectChoice("starttls", _l("STARTTLS (usually port 587)")),
        SelectChoice("none", _l("None (port 25, a relay on your own network)"))])
    mail_username = StringField(_l("User"), render_kw={"autocomplete": "off", "spellcheck": "false"})
    mail_password = PasswordField(_l("Password or authorisation code"), render_kw={"autocomplete": "new-password"})
    clear_password = BooleanField(_l("Remove the saved password (the server needs no login)"))
    mail_sender = StringField(_l("Sender address"), render_kw={"inputmode": "email", "autocomplete": "off",
                                                               "placeholder": "shop@example.com"})
    test_to = StringField(_l("Send a test email to"), render_kw={"inputmode": "email", "autocomplete": "off"})

    SETTINGS = ("shop_name", "currency", "language", "timezone", "mail_server", "mail_port", "mail_security",
                "mail_username", "mail_password", "mail_sender")

    def lock(self, locked: dict) -> None:
        """Drop the fields the environment sets: they are neither shown as inputs nor saved."""
        for name in locked:
            if name in self._fields:
                del self[name]
        if "mail_password" in locked:
            del self["clear_password"]

    def load(self, settings) -> None:
        """Fill from the effective settings (GET). The password never goes back into the page."""
        from notify.shop_settings import current_values

        for name, value in current_values(settings).items():
            if name in self._fields:
                self[name].data = value

    def values(self) -> dict:
        """What was typed, by setting; a blank password keeps the saved one (None), unless cleared."""
        found = {name: self[name].data for name in self.SETTINGS if name in self._fields}
        if "mail_password" in found:
            typed = found["mail_password"] or ""
            found["mail_password"] = "" if self.clear_password.data else (typed or None)
        return found
