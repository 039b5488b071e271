"""Flask-WTF forms for the admin. Field rules that also apply to imports and the API live in the
domain (the transports' `validate`); the forms show those messages next to the field."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, RadioField, SelectChoice, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from notify import hooks
from notify.transports.webhook import AUTH_PASSWORD, AUTH_SIGNATURE, WebhookTransport


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


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def hook_choices() -> list[SelectChoice]:
    return [SelectChoice(h.name, f"{h.label} ({h.name})", optgroup=hooks.GROUP_LABELS[h.group]) for h in hooks.HOOKS]


class WebhookForm(FlaskForm):
    url = StringField(_l("Payload URL"), render_kw={"placeholder": "https://example.com/hooks/apsdai",
                                                    "inputmode": "url", "autocomplete": "off"})
    description = StringField(_l("Description"), validators=[Optional(), Length(max=200)])
    auth_mode = RadioField(_l("Authentication"), default=AUTH_SIGNATURE, choices=[
        SelectChoice(AUTH_SIGNATURE, _l("Signature: X-Apsdai-Token is an HMAC-SHA256 signature of the timestamp")),
        SelectChoice(AUTH_PASSWORD, _l("Password: X-Apsdai-Token is the password, sent as-is")),
    ])
    secret = StringField(_l("Secret"), render_kw={"autocomplete": "off", "spellcheck": "false"})
    hooks = MultiCheckboxField(_l("Events"), choices=hook_choices())
    enabled = BooleanField(_l("Enabled"), default=True)

    def __init__(self, *args, existing_secret: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.existing_secret = existing_secret

    def effective_secret(self) -> str | None:
        """A blank secret on the edit form keeps the one already saved."""
        typed = (self.secret.data or "").strip()
        return typed or self.existing_secret

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        config = {"url": (self.url.data or "").strip(), "auth_mode": self.auth_mode.data}
        for field_name, message in WebhookTransport.validate(config, self.effective_secret()).items():
            getattr(self, field_name).errors.append(message)
            ok = False
        if not self.hooks.data:
            self.hooks.errors.append(str(_l("Choose at least one event.")))
            ok = False
        return ok


class TestForm(FlaskForm):
    hook = SelectField(_l("Event to send"), choices=hook_choices(), default="order_pay_hook")


class TokenForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=80)],
                       render_kw={"placeholder": _l("e.g. my-shop")})
