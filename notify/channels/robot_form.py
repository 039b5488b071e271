"""The settings form every group robot shares (DingTalk, WeCom, Feishu): the webhook URL that
holds the robot's credential, the confirmation of an unexpected host, and mentions per group of events."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, StringField

from forms import ChannelForm
from notify import hooks


class RobotForm(ChannelForm):
    """DingTalk, WeCom, Feishu: the robot's webhook URL holds its credential, so once saved it is shown
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
            if hasattr(self, f"mobiles_{group}"):
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
            user_ids, mobiles = getattr(self, f"user_ids_{group}", None), getattr(self, f"mobiles_{group}", None)
            raw[group] = {"all": getattr(self, f"at_all_{group}").data,
                          "mobiles": (mobiles.data or "") if mobiles else "",
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
                service=self.transport.label, official=", ".join(self.transport.hosts()))))
            ok = False
        return ok

    def error_field(self, name: str):
        if name.startswith("mentions_") and name.endswith("_user_ids"):
            return getattr(self, "user_ids_" + name[len("mentions_"):-len("_user_ids")])
        if name.startswith("mentions_"):
            group = name[len("mentions_"):]
            # A service without mobiles shows a group's problem beside its user ids.
            return getattr(self, "mobiles_" + group, None) or getattr(self, "user_ids_" + group)
        return super().error_field(name)


def mention_fields(form_class, kinds: tuple[str, ...], user_id_example: str = "zhangsan, lisi") -> None:
    """The mention fields of each group of events, for the mention kinds the service supports."""
    for group, label in hooks.GROUP_LABELS.items():
        setattr(form_class, f"at_all_{group}", BooleanField(_l("@all")))
        if "mobiles" in kinds:
            setattr(form_class, f"mobiles_{group}", StringField(
                _l("Mobiles to @"), render_kw={"placeholder": "13800000000, 13900000000", "inputmode": "tel"}))
        if "user_ids" in kinds:
            setattr(form_class, f"user_ids_{group}", StringField(
                _l("User ids to @"), render_kw={"placeholder": user_id_example}))
