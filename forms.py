"""Flask-WTF forms for the admin. Field rules that also apply to imports and the API live in the
domain (the transports' `validate`); the forms show those messages next to the field."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (BooleanField, PasswordField, RadioField, SelectChoice, SelectField, SelectMultipleField, StringField,
                     TextAreaField)
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from notify import hooks, rules
from notify.transports import DingTalkTransport, EmailTransport, WebhookTransport, WeComTransport
from notify.transports.dingtalk import KEYWORD_PREFIX, KEYWORD_SUFFIX
from notify.transports.webhook import AUTH_PASSWORD, AUTH_SIGNATURE


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


class WebhookForm(ChannelForm):
    transport = WebhookTransport
    url = StringField(_l("Payload URL"), render_kw={"placeholder": "https://example.com/hooks/apsdai",
                                                    "inputmode": "url", "autocomplete": "off"})
    auth_mode = RadioField(_l("Authentication"), default=AUTH_SIGNATURE, choices=[
        SelectChoice(AUTH_SIGNATURE, _l("Signature: X-Apsdai-Token is an HMAC-SHA256 signature of the timestamp")),
        SelectChoice(AUTH_PASSWORD, _l("Password: X-Apsdai-Token is the password, sent as-is")),
    ])
    secret = StringField(_l("Secret"), render_kw={"autocomplete": "off", "spellcheck": "false"})
    standard_webhooks = BooleanField(_l("Also sign as Standard Webhooks (webhook-id, webhook-timestamp, "
                                        "webhook-signature)"))

    def load(self, channel) -> None:
        super().load(channel)
        self.url.data = channel.config.get("url")
        self.auth_mode.data = channel.config.get("auth_mode")
        self.standard_webhooks.data = bool(channel.config.get("standard_webhooks"))

    def config(self) -> dict:
        return {"url": (self.url.data or "").strip(), "auth_mode": self.auth_mode.data,
                "standard_webhooks": bool(self.standard_webhooks.data)}

    def effective_secret(self) -> str | None:
        """A blank secret on the edit form keeps the one already saved."""
        typed = (self.secret.data or "").strip()
        return typed or (self.channel.secret if self.channel else None)


class RobotForm(ChannelForm):
    """DingTalk and WeCom: the robot's webhook URL holds its credential, so once saved it is shown
    masked and a blank field keeps it; mentions are chosen per group of events."""

    url = StringField(_l("Webhook URL"), render_kw={"inputmode": "url", "autocomplete": "off", "spellcheck": "false"})
    confirm_host = BooleanField(_l("Use this address anyway"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Set by `validate` when the URL's host is not the service's own: the page then shows
        # the warning and the checkbox that confirms the address.
        self.host_warning = False

    def load(self, channel) -> None:
        super().load(channel)
        for group in hooks.GROUP_LABELS:
            chosen = self.transport.mentions_for(channel.config, group)
            getattr(self, f"at_all_{group}").data = chosen["all"]
            getattr(self, f"mobiles_{group}").data = ", ".join(chosen["mobiles"])
            if hasattr(self, f"user_ids_{group}"):
                getattr(self, f"user_ids_{group}").data = ", ".join(chosen["user_ids"])

    def saved_url(self) -> str:
        typed = (self.url.data or "").strip()
        return typed or (self.channel.config.get("url", "") if self.channel else "")

    def mentions(self) -> dict:
        """As typed; the transport checks and cleans them."""
        raw = {}
        for group in hooks.GROUP_LABELS:
            user_ids = getattr(self, f"user_ids_{group}", None)
            raw[group] = {"all": getattr(self, f"at_all_{group}").data,
                          "mobiles": getattr(self, f"mobiles_{group}").data or "",
                          "user_ids": (user_ids.data or "") if user_ids else ""}
        return raw

    def config(self) -> dict:
        return {"url": self.saved_url(), "mentions": self.mentions()}

    def validate(self, extra_validators=None) -> bool:
        """The channel's rules (the transport's), then: a newly typed URL on another host than the
        service's own is saved only once the merchant confirms it (a gateway or a proxy is fine,
        a mistyped or pasted-from-elsewhere address is not). The saved URL was confirmed already."""
        ok = super().validate(extra_validators)
        typed = (self.url.data or "").strip()
        saved = self.channel.config.get("url", "") if self.channel else ""
        host = self.transport.unexpected_host(typed) if typed and typed != saved else None
        if host and not self.url.errors and not self.confirm_host.data:
            self.host_warning = True
            self.url.errors.append(str(_l(
                "%(host)s is not %(service)s's address (%(official)s). If this is a gateway or a proxy you use on "
                "purpose, tick “Use this address anyway” and save again.", host=host,
                service=self.transport.label, official=self.transport.official_host)))
            ok = False
        return ok

    def error_field(self, name: str):
        if name.startswith("mentions_") and name.endswith("_user_ids"):
            return getattr(self, "user_ids_" + name[len("mentions_"):-len("_user_ids")])
        if name.startswith("mentions_"):
            return getattr(self, "mobiles_" + name[len("mentions_"):])
        return super().error_field(name)


class DingTalkForm(RobotForm):
    transport = DingTalkTransport
    secret = StringField(_l("Signing secret (加签)"), render_kw={"autocomplete": "off", "spellcheck": "false",
                                                              "placeholder": "SEC…"})
    keyword = StringField(_l("Keyword"), validators=[Optional(), Length(max=50)])
    keyword_position = RadioField(_l("Where the keyword goes"), default=KEYWORD_PREFIX, choices=[
        SelectChoice(KEYWORD_PREFIX, _l("Before the message")), SelectChoice(KEYWORD_SUFFIX, _l("After the message"))])
    clear_secret = BooleanField(_l("Remove the saved secret (the robot does not use 加签)"))

    def load(self, channel) -> None:
        super().load(channel)
        self.keyword.data = channel.config.get("keyword", "")
        self.keyword_position.data = channel.config.get("keyword_position", KEYWORD_PREFIX)

    def config(self) -> dict:
        return dict(super().config(), keyword=(self.keyword.data or "").strip(),
                    keyword_position=self.keyword_position.data)

    def effective_secret(self) -> str | None:
        if self.clear_secret.data:
            return None
        typed = (self.secret.data or "").strip()
        return typed or (self.channel.secret if self.channel else None) or None


class WeComForm(RobotForm):
    transport = WeComTransport


def _mention_fields(form_class, kinds: tuple[str, ...]) -> None:
    for group, label in hooks.GROUP_LABELS.items():
        setattr(form_class, f"at_all_{group}", BooleanField(_l("@all")))
        setattr(form_class, f"mobiles_{group}", StringField(
            _l("Mobiles to @"), render_kw={"placeholder": "13800000000, 13900000000", "inputmode": "tel"}))
        if "user_ids" in kinds:
            setattr(form_class, f"user_ids_{group}", StringField(
                _l("User ids to @"), render_kw={"placeholder": "zhangsan, lisi"}))


_mention_fields(DingTalkForm, DingTalkTransport.mention_kinds)
_mention_fields(WeComForm, WeComTransport.mention_kinds)


class EmailForm(ChannelForm):
    transport = EmailTransport
    recipients = TextAreaField(_l("Recipients"), render_kw={"rows": 3, "placeholder": "owner@example.com, ops@example.com",
                                                           "autocomplete": "off"})

    def load(self, channel) -> None:
        super().load(channel)
        self.recipients.data = "\n".join(channel.config.get("recipients") or [])

    def config(self) -> dict:
        return {"recipients": self.recipients.data or ""}


FORMS = {form.transport.kind: form for form in (EmailForm, DingTalkForm, WeComForm, WebhookForm)}


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
