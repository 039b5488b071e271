from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import utcnow


class Channel(db.Model):
    """One configured notification target: a WebHook endpoint, a DingTalk, WeCom or Feishu robot, an email list.

    What differs between kinds lives in `config` (non-secret settings, validated by the kind's
    transport) and `secret`; everything the dispatch path needs (kind, enabled, hooks) is generic.
    """

    __tablename__ = "channels"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    # Kept readable (not hashed): signing needs the secret itself. Masked everywhere it is shown.
    secret: Mapped[str | None] = mapped_column(Text)
    # During a secret rotation: the old secret, which keeps signing until the window ends.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    hooks: Mapped[list] = mapped_column(JSON, default=list)
    # Filters and quiet hours, whatever the kind (notify.rules); None: none.
    rules: Mapped[dict | None] = mapped_column(JSON)
    # Set by a permanent failure (bad credentials, removed robot, 410); cleared by a success.
    needs_attention: Mapped[bool] = mapped_column(default=False)
    # Why, as `Delivery.last_error`: an English copy and the reason as a code (notify.reasons).
    attention_reason: Mapped[str | None] = mapped_column(Text)
    attention_code: Mapped[dict | None] = mapped_column(JSON)
    # When the current run of failures began (None after a success): a channel failing for
    # CHANNEL_DISABLE_AFTER_HOURS is disabled automatically.
    failing_since: Mapped[datetime | None]
    # The signature check (notify.probe): the last check's probe id (its X-Apsdai-Delivery and
    # webhook-id), its state (pending, passed, flagged, unknown), when it was asked for or answered,
    # and what came back ("HTTP 401", or why there was no answer).
    signature_check_id: Mapped[str | None] = mapped_column(String(40))
    signature_check_status: Mapped[str | None] = mapped_column(String(12))
    signature_check_at: Mapped[datetime | None]
    signature_check_detail: Mapped[str | None] = mapped_column(Text)
    # Set when a check found the receiver accepting a forged request; cleared only by a later check
    # that it passes (a check without an answer proves nothing either way).
    forgery_accepted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def shown_attention_reason(self) -> str | None:
        """Why it needs attention, in words in the current language (a row without a code: as stored)."""
        from notify import reasons

        return reasons.show(self.attention_code, self.attention_reason)

    @property
    def shown_signature_check_detail(self) -> str:
        """The last signature check's detail in words in the current language: an answer
        ("HTTP 403") as it is, a failure without an answer from its stored reason (notify.probe)."""
        from notify import reasons

        detail = self.signature_check_detail or ""
        if detail.startswith('{"code"'):
            try:
                return reasons.show(json.loads(detail), None) or ""
            except ValueError:
                return detail
        return detail

    def rotating(self, now: datetime | None = None) -> bool:
        """Whether the previous secret still signs (a rotation window is open)."""
        return bool(self.previous_secret and self.previous_secret_until and self.previous_secret_until > (now or utcnow()))

    @property
    def target(self) -> str:
        """What the merchant recognises the channel by (a URL, recipients), without credentials."""
        from notify.channels import transport_for

        return transport_for(self.kind).describe(self.config or {})

    def __repr__(self) -> str:
        return f"<Channel {self.id} {self.kind} {self.target}>"
