"""Delivery history: the list, one delivery with its attempts, and the live result of a Test."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_number, ngettext
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy.orm import joinedload

from extensions import db
from forms import ActionForm
from models import Channel, Delivery, DeliveryStatus, Event
from models.base import local_to_utc, utcnow
from notify import channels as channel_service
from notify import digests, dispatch, history, hooks, reasons, recovery, shop_settings
from notify.filters import DeliveryFilter, parse_digest, parse_search

bp = Blueprint("deliveries", __name__, url_prefix="/deliveries")
PAGE_SIZE = 50


@bp.before_request
@login_required
def require_login():
    return None


@bp.route("/")
def index():
    selected, args, date_errors = _filter(request.args)
    if selected.search is not None and selected.search.kind == "delivery":
        # An exact delivery id jumps to its page.
        if db.session.get(Delivery, selected.search.value) is not None:
            return redirect(url_for("deliveries.detail", delivery_id=selected.search.value))
    event_page = None
    if selected.search is not None and selected.search.kind == "event" and \
            db.session.scalar(db.select(Event.id).where(Event.id == selected.search.value)) is not None:
        # An event that has no delivery (every channel's filters left it out) opens its own page;
        # one that has deliveries lists them, with a link to it.
        event_page = url_for("deliveries.event", event_id=selected.search.value)
        if db.session.scalar(db.select(Delivery.id).where(Delivery.event_id == selected.search.value).limit(1)) is None:
            return redirect(event_page)
    before = request.args.get("before") or None  # keyset pagination: fast at any depth
    # Of the event, only what the list shows: its data is never needed here (and may not decode).
    query = (db.select(Delivery).options(joinedload(Delivery.event).load_only(Event.hook, Event.is_test))
             .where(*selected.conditions()).order_by(Delivery.created_at.desc(), Delivery.id.desc()))
    if before:
        pivot = db.session.get(Delivery, before)
        if pivot is not None:
            query = query.where((Delivery.created_at < pivot.created_at)
                                | ((Delivery.created_at == pivot.created_at) & (Delivery.id < pivot.id)))
    rows = db.session.scalars(query.limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    total, more_than = selected.count()
    return _page(render_template(
        "deliveries/index.html", deliveries=rows, more=more, count=_count_text(total, more_than), total=total,
        statuses=DeliveryStatus.ALL, channels=_channel_choices(), hooks=hooks.HOOKS, args=args,
        filtered=any(args.values()), date_errors=date_errors, event_page=event_page))


@bp.route("/redeliver", methods=["GET", "POST"])
def redeliver_filtered():
    """Send again everything a filter of the list shows: GET previews it, POST (with its CSRF token
    and the preview's moment) sends it."""
    source = request.form if request.method == "POST" else request.args
    selected, args, date_errors = _filter(source)
    if date_errors:
        return redirect(url_for("deliveries.index", **args))
    if request.method == "POST":
        as_of = _moment(request.form.get("as_of"))
        if ActionForm().validate_on_submit() and as_of is not None:
            sent = recovery.redeliver_filtered(selected, as_of)
            if sent:
                flash(ngettext("Sending %(count)s delivery again, with its X-Apsdai-Delivery id.",
                               "Sending %(count)s deliveries again, each with its X-Apsdai-Delivery id.", len(sent),
                               count=format_number(len(sent))), "success")
                if len(sent) == recovery.REDELIVER_CAP:
                    flash(_("At most %(cap)s are sent at a time: once they are done, send the rest the same way.",
                            cap=format_number(recovery.REDELIVER_CAP)), "info")
            else:
                flash(_("Nothing was sent again: none of these deliveries is finished and to a channel that is still "
                        "enabled."), "warning")
            return redirect(url_for("deliveries.index", **args))
        return redirect(url_for("deliveries.redeliver_filtered", **args))
    summary, more = recovery.redelivery_preview(selected)
    channels = {channel.id: channel for channel in db.session.scalars(db.select(Channel))}
    return _page(render_template(
        "deliveries/redeliver.html", summary=summary, more=more, cap=format_number(recovery.REDELIVER_CAP),
        total=format_number(summary.total), args=args, as_of=utcnow().isoformat(),
        by_channel=[(channel_service.choice_label(channels[channel_id]), n)
                    for channel_id, n in summary.by_channel.most_common() if channel_id in channels],
        by_hook=[(hooks.get(name).label if name in hooks.HOOKS_BY_NAME else name, name, n)
                 for name, n in summary.by_hook.most_common()]))


def _filter(source) -> tuple[DeliveryFilter, dict, dict]:
    """The filter in `source` (query string or form): the parsed filter, the values given (to
    carry into links and forms), and the errors to show (a malformed date is explained and ignored)."""
    args = {name: (source.get(name) or "").strip()
            for name in ("q", "status", "channel", "hook", "since", "until", "digest")}
    # Days are the merchant's days (their time zone), compared with UTC timestamps.
    tz = shop_settings.effective().timezone
    since, until = _day(args["since"], tz), _day(args["until"], tz, end=True)
    date_errors = {}
    for name, value in (("since", since), ("until", until)):
        if value is False:
            date_errors[name] = _("Use a date like 2026-11-27.")
    # Only a digest id filters (and is shown as the filter); anything else is no filter.
    args["digest"] = parse_digest(args["digest"]) or ""
    # A channel id is a small integer; anything else (or beyond what the column holds) is no filter.
    channel_id = int(args["channel"]) if args["channel"].isdigit() and len(args["channel"]) <= 9 else None
    selected = DeliveryFilter(status=args["status"] or None, channel_id=channel_id, hook=args["hook"] or None,
                              since=since or None, until=until or None, search=parse_search(args["q"]),
                              digest=args["digest"] or None)
    return selected, {name: value for name, value in args.items() if value}, date_errors


def _count_text(n: int, more: bool) -> str:
    if more:
        return _("More than %(count)s deliveries", count=format_number(n))
    return ngettext("%(count)s delivery", "%(count)s deliveries", n, count=format_number(n))


def _channel_choices() -> list[tuple[int, str]]:
    return [(channel.id, channel_service.choice_label(channel))
            for channel in db.session.scalars(db.select(Channel).order_by(Channel.id))]


def _moment(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _day(value: str | None, tz: str, end: bool = False):
    """A `YYYY-MM-DD` filter as the UTC moment its day (the merchant's) starts, or with `end` the
    moment it ends; None when empty, False when malformed or beyond the calendar (year 1 east of
    UTC, year 9999)."""
    if not value:
        return None
    try:
        return local_to_utc(datetime.strptime(value, "%Y-%m-%d") + timedelta(days=1 if end else 0), tz)
    except (ValueError, OverflowError):
        return False


def _load(delivery_id: str) -> Delivery:
    return db.session.get(Delivery, delivery_id) or abort(404)


def _page(html: str) -> bytes:
    """A rendered page as UTF-8 that cannot fail: stored data (an attempt's headers written by an
    older version, say) may hold a lone surrogate, which is shown as its escape."""
    return html.encode("utf-8", errors="backslashreplace")


@bp.route("/events/<event_id>")
def event(event_id: str):
    """One event: what it carried, its deliveries, and which channels' filters left it out and why
    (`events.filtered`, put into words now, naming each channel as it is called today)."""
    # An id longer than the column, or with a NUL (which PostgreSQL refuses in any query), is no row.
    stored = history.load_event(event_id) if len(event_id) <= 40 and "\x00" not in event_id else None
    if stored is None:
        abort(404)
    deliveries = db.session.scalars(db.select(Delivery).where(Delivery.event_id == event_id)
                                    .order_by(Delivery.created_at, Delivery.id)).all()
    return _page(render_template("deliveries/event.html", event=stored, deliveries=deliveries,
                                 filtered=_filtered_lines(event_id)))


def _filtered_lines(event_id: str) -> list[dict]:
    """`[{"channel": Channel | None, "name", "reason"}]` for the event's `filtered`, whatever it holds."""
    entries = db.session.scalar(db.select(Event.filtered).where(Event.id == event_id))
    lines = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        channel_id = entry.get("channel_id")
        channel = db.session.get(Channel, channel_id) if isinstance(channel_id, int) and \
            not isinstance(channel_id, bool) and 0 < channel_id < 2**31 else None
        name = channel_service.choice_label(channel) if channel is not None else \
            _("a deleted channel (#%(id)s)", id=channel_id)
        lines.append({"channel": channel, "name": name,
                      "reason": reasons.show(entry.get("reason") if isinstance(entry.get("reason"), dict) else None,
                                             None) or ""})
    return lines


@bp.route("/<delivery_id>")
def detail(delivery_id: str):
    delivery = _load(delivery_id)
    event = history.load_event(delivery.event_id)
    curl, no_curl = history.curl_for(delivery)
    return _page(render_template("deliveries/detail.html", delivery=delivery, event=event, curl=curl,
                                 no_curl=no_curl, revealed=False, action_form=ActionForm(),
                                 digest=digests.carried_by(delivery)))


@bp.route("/<delivery_id>/curl", methods=["POST"])
def reveal_curl(delivery_id: str):
    """The delivery's page with the curl command's credentials in clear: only on an explicit POST
    (with its CSRF token), and never stored by a cache or the browser's history."""
    delivery = _load(delivery_id)
    if not ActionForm().validate_on_submit():
        return redirect(url_for("deliveries.detail", delivery_id=delivery_id))
    event = history.load_event(delivery.event_id)
    curl, no_curl = history.curl_for(delivery, reveal=True)
    page = render_template("deliveries/detail.html", delivery=delivery, event=event, curl=curl, no_curl=no_curl,
                           revealed=True, action_form=ActionForm(), digest=digests.carried_by(delivery))
    return _page(page), 200, {"Cache-Control": "no-store"}


@bp.route("/<delivery_id>/redeliver", methods=["POST"])
def redeliver(delivery_id: str):
    _load(delivery_id)
    if ActionForm().validate_on_submit():
        try:
            dispatch.redeliver(delivery_id)
            flash(_("Sent again, with the same X-Apsdai-Delivery id."), "success")
        except dispatch.CannotRedeliver as exc:
            flash(_("Cannot send it again: %(reason)s.", reason=str(exc)), "danger")
    return redirect(url_for("deliveries.detail", delivery_id=delivery_id))


@bp.route("/<delivery_id>/result")
def result(delivery_id: str):
    """The result panel alone, polled by the detail page until the delivery settles."""
    delivery = _load(delivery_id)
    response = _page(render_template("deliveries/_result.html", delivery=delivery,
                                     is_test=history.is_test(delivery.event_id), digest=digests.carried_by(delivery)))
    return response, 200, {"X-Delivery-Final": "1" if delivery.is_final else "0", "Cache-Control": "no-store"}
