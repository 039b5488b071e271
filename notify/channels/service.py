"""Channel management shared by the admin, the settings import and the CLI."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from extensions import db
from models import Attempt, Channel, Delivery, DeliveryStatus
from models.base import utcnow
from notify import dispatch, hooks, reasons, rules, signing
from notify.channels import transport_for


class InvalidChannel(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


KEEP = object()  # `apply(rules_=KEEP)`: the channel's rules stay as they are


def apply(channel: Channel, *, config: dict, secret: str | None, hooks_: list[str], enabled: bool,
          description: str = "", rules_=KEEP) -> Channel:
    """Validate and set a channel's settings (not committed). Raises `InvalidChannel`. `rules_`
    (filters and quiet hours, notify.rules's shape; None for none) is left as it is when not given;
    its errors are keyed `rules.<field>` (`rules.min_amount`, `rules.quiet_to`, …)."""
    transport = transport_for(channel.kind)
    errors = transport.validate(config, secret)
    if rules_ is not KEEP:
        cleaned_rules, rule_errors = rules.clean(rules_)
        errors.update({f"rules.{name}": message for name, message in rule_errors.items()})
    unknown = [h for h in hooks_ if h not in hooks.HOOKS_BY_NAME]
    if unknown:
        errors["hooks"] = f"unknown hooks: {', '.join(unknown)}"
    elif not hooks_:
        errors["hooks"] = "choose at least one event"
    if errors:
        raise InvalidChannel(errors)
    channel.config = transport.normalize(config)
    channel.secret = secret
    # Stored in catalogue order so exports and pages list them the same way every time.
    channel.hooks = [h for h in hooks.HOOK_NAMES if h in hooks_]
    channel.enabled = enabled
    channel.description = description
    if rules_ is not KEEP:
        before, channel.rules = rules.parse(channel.rules), cleaned_rules
        if channel.id is not None and _quiet(before) != _quiet(rules.parse(cleaned_rules)):
            retime_parked(channel)
    return channel


def _quiet(parsed: rules.Rules | None) -> tuple:
    return (parsed.quiet_from, parsed.quiet_to, parsed.urgent) if parsed is not None and parsed.has_quiet else ()


def retime_parked(channel: Channel) -> int:
    """The channel's quiet hours changed: what waits for them is due when the new ones end, or now
    (none any more, outside them now, or its hook is now urgent). Not committed; the workers get
    them when it is. Returns how many were re-timed."""
    now = utcnow()
    parsed, tz = rules.parse(channel.rules), None
    parked = db.session.execute(db.select(Delivery.id, Delivery.hook).where(
        Delivery.channel_id == channel.id, Delivery.fold == "quiet", Delivery.status == DeliveryStatus.PENDING,
        Delivery.next_attempt_at > now)).all()
    for delivery_id, hook in parked:
        if tz is None:
            from notify import shop_settings

            tz = shop_settings.effective().timezone
        due = rules.quiet_until(parsed, hook or "", now, tz)
        db.session.execute(update(Delivery).where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.PENDING)
                           .values(next_attempt_at=due or now, fold="quiet" if due else None, updated_at=now)
                           .execution_options(synchronize_session=False))
        dispatch.hand_over([(channel.id, delivery_id)], due=dispatch._epoch(due) if due else None)
    return len(parked)


def rotate_secret(channel: Channel, window: timedelta) -> None:
    """Give the channel a new secret; during `window` the old one keeps signing too. Not committed."""
    if window > timedelta(0) and channel.secret:
        channel.previous_secret, channel.previous_secret_until = channel.secret, utcnow() + window
    else:
        channel.previous_secret, channel.previous_secret_until = None, None
    channel.secret = signing.generate_secret()


def delete(channel: Channel) -> None:
    """Delete a channel; its pending deliveries are cancelled, its history kept. Commits."""
    why = reasons.reason("channel_deleted")
    db.session.execute(
        update(Delivery)
        .where(Delivery.channel_id == channel.id, Delivery.status.in_(DeliveryStatus.ACTIVE))
        .values(status=DeliveryStatus.CANCELLED, last_error=why.english(), last_error_code=why.to_json(),
                updated_at=utcnow())
    )
    db.session.delete(channel)
    db.session.commit()


def send_test(channel: Channel, hook_name: str, mentions: bool = False) -> str:
    """Send a sample of `hook_name` to this channel alone, through the same queue and transport as
    real events. One attempt only: the merchant is waiting for the answer. A robot's message
    mentions nobody unless `mentions` (the form's "Also @mention as configured"). Commits; returns
    the delivery id."""
    event = dispatch.emit(hook_name, hooks.get(hook_name).sample, source="test", channels=[channel], is_test=True,
                          max_attempts=1, test_mentions=mentions)
    return event.delivery_ids[0]


def last_attempts(channel_ids: list[int]) -> dict[int, Attempt]:
    """The most recent attempt of each channel, for the 'last result' column."""
    # One indexed lookup per channel (a merchant has a handful): a GROUP BY would read every
    # attempt of every channel.
    found = {}
    for channel_id in channel_ids:
        attempt = db.session.scalar(db.select(Attempt).where(Attempt.channel_id == channel_id)
                                    .order_by(Attempt.id.desc()).limit(1))
        if attempt is not None:
            found[channel_id] = attempt
    return found


def choice_label(channel: Channel, width: int = 60) -> str:
    """How a list of channels names one: its kind's label, then its description or, without one,
    its target (masked as everywhere), cut to `width` characters so a choice never widens a page."""
    name = channel.description or channel.target
    if len(name) > width:
        name = name[:width - 1] + "…"
    return f"{transport_for(channel.kind).label} · {name}"
