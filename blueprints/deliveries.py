"""Delivery history: the list, one delivery with its attempts, and the live result of a Test."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy.orm import joinedload

from extensions import db
from forms import ActionForm
from models import Channel, Delivery, DeliveryStatus, Event
from models.base import local_to_utc
from notify import dispatch, history, hooks, shop_settings

bp = Blueprint("deliveries", __name__, url_prefix="/deliveries")
PAGE_SIZE = 50


@bp.before_request
@login_required
def require_login():
    return None


@bp.route("/")
def index():
    status = request.args.get("status") or None
    channel_id = request.args.get("channel", type=int)
    hook = request.args.get("hook") or None
    before = request.args.get("before") or None  # keyset pagination: fast at any depth
    # Days are the merchant's days (their time zone), compared with UTC timestamps.
    tz = shop_settings.effective().timezone
    since, until = _day(request.args.get("since"), tz), _day(request.args.get("until"), tz, end=True)
    date_errors = {}
    for name, value in (("since", since), ("until", until)):
        if value is False:
            date_errors[name] = _("Use a date like 2026-11-27.")
    # Of the event, only what the list shows: its data is never needed here (and may not decode).
    query = (db.select(Delivery).options(joinedload(Delivery.event).load_only(Event.hook, Event.is_test))
             .order_by(Delivery.created_at.desc(), Delivery.id.desc()))
    if status in DeliveryStatus.ALL:
        query = query.where(Delivery.status == status)
    if channel_id:
        query = query.where(Delivery.channel_id == channel_id)
    if hook in hooks.HOOKS_BY_NAME:
        query = query.where(Delivery.hook == hook)
    if since:
        query = query.where(Delivery.created_at >= since)
    if until:
        query = query.where(Delivery.created_at < until)
    if before:
        pivot = db.session.get(Delivery, before)
        if pivot is not None:
            query = query.where((Delivery.created_at < pivot.created_at)
                                | ((Delivery.created_at == pivot.created_at) & (Delivery.id < pivot.id)))
    rows = db.session.scalars(query.limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    channels = db.session.scalars(db.select(Channel).order_by(Channel.id)).all()
    return _page(render_template(
        "deliveries/index.html", deliveries=rows, more=more, statuses=DeliveryStatus.ALL, status=status,
        channel_id=channel_id, channels=channels, hook=hook, hooks=hooks.HOOKS, since=request.args.get("since", ""),
        until=request.args.get("until", ""), date_errors=date_errors))


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


@bp.route("/<delivery_id>")
def detail(delivery_id: str):
    delivery = _load(delivery_id)
    event = history.load_event(delivery.event_id)
    curl, no_curl = history.curl_for(delivery)
    return _page(render_template("deliveries/detail.html", delivery=delivery, event=event, curl=curl,
                                 no_curl=no_curl, revealed=False, action_form=ActionForm()))


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
                           revealed=True, action_form=ActionForm())
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
                                     is_test=history.is_test(delivery.event_id)))
    return response, 200, {"X-Delivery-Final": "1" if delivery.is_final else "0", "Cache-Control": "no-store"}
