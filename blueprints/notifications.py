"""Settings › Configuration › Notifications: the four methods, WebHook endpoints, and Test."""
from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required

from extensions import db
from forms import ActionForm, TestForm, WebhookForm
from models import Channel
from notify import channels as channel_service
from notify import hooks, signing
from notify.transports import METHODS, REGISTRY
from notify.transports.webhook import WebhookTransport

bp = Blueprint("notifications", __name__, url_prefix="/settings/notifications")


@bp.before_request
@login_required
def require_login():
    return None


@bp.app_template_global()
def mask_secret(secret):
    return signing.mask(secret)


def _webhook_or_404(channel_id: int) -> Channel:
    channel = db.session.get(Channel, channel_id)
    if channel is None or channel.kind != WebhookTransport.kind:
        abort(404)
    return channel


@bp.route("/")
def index():
    channels = db.session.scalars(db.select(Channel).order_by(Channel.kind, Channel.id)).all()
    last = channel_service.last_attempts([c.id for c in channels])
    methods = []
    for kind, label in METHODS:
        of_kind = [c for c in channels if c.kind == kind]
        methods.append({
            "kind": kind, "label": label, "available": kind in REGISTRY, "channels": of_kind,
            "enabled": any(c.enabled for c in of_kind),
            "needs_attention": any(c.needs_attention for c in of_kind),
        })
    return render_template("notifications/index.html", methods=methods, last=last, groups=hooks.grouped(),
                           action_form=ActionForm())


def _save(form: WebhookForm, channel: Channel) -> bool:
    try:
        channel_service.apply(
            channel,
            config={"url": form.url.data.strip(), "auth_mode": form.auth_mode.data},
            secret=form.effective_secret(), hooks_=form.hooks.data, enabled=form.enabled.data,
            description=(form.description.data or "").strip(),
        )
    except channel_service.InvalidChannel as exc:
        for field_name, message in exc.errors.items():
            getattr(form, field_name).errors.append(message)
        return False
    return True


@bp.route("/webhooks/new", methods=["GET", "POST"])
def new_webhook():
    form = WebhookForm()
    if request.method == "GET":
        form.hooks.data = list(hooks.HOOK_NAMES)
    if form.validate_on_submit():
        channel = Channel(kind=WebhookTransport.kind)
        if _save(form, channel):
            db.session.add(channel)
            db.session.commit()
            flash(_("WebHook saved. Send a test to check that your receiver accepts it."), "success")
            return redirect(url_for("notifications.edit_webhook", channel_id=channel.id))
    return render_template("notifications/webhook_form.html", form=form, channel=None, groups=hooks.grouped())


@bp.route("/webhooks/<int:channel_id>", methods=["GET", "POST"])
def edit_webhook(channel_id: int):
    channel = _webhook_or_404(channel_id)
    form = WebhookForm(existing_secret=channel.secret)
    if request.method == "GET":
        form.url.data = channel.config.get("url")
        form.auth_mode.data = channel.config.get("auth_mode")
        form.description.data = channel.description
        form.hooks.data = list(channel.hooks)
        form.enabled.data = channel.enabled
    if form.validate_on_submit():
        if _save(form, channel):
            db.session.commit()
            flash(_("WebHook saved."), "success")
            return redirect(url_for("notifications.edit_webhook", channel_id=channel.id))
        db.session.rollback()
    return render_template("notifications/webhook_form.html", form=form, channel=channel, groups=hooks.grouped(),
                           test_form=TestForm(), action_form=ActionForm())


@bp.route("/webhooks/<int:channel_id>/secret")
def reveal_secret(channel_id: int):
    """The secret in clear, for the reveal and copy buttons. No caching anywhere on the way."""
    channel = _webhook_or_404(channel_id)
    response = jsonify({"secret": channel.secret or ""})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/webhooks/<int:channel_id>/regenerate", methods=["POST"])
def regenerate_secret(channel_id: int):
    channel = _webhook_or_404(channel_id)
    if ActionForm().validate_on_submit():
        channel.secret = signing.generate_secret()
        db.session.commit()
        flash(_("A new secret was generated. Update your receiver with it: requests are now signed with the "
                "new secret."), "warning")
    return redirect(url_for("notifications.edit_webhook", channel_id=channel.id))


@bp.route("/channels/<int:channel_id>/toggle", methods=["POST"])
def toggle(channel_id: int):
    channel = db.session.get(Channel, channel_id) or abort(404)
    if ActionForm().validate_on_submit():
        channel.enabled = not channel.enabled
        db.session.commit()
        flash(_("Enabled.") if channel.enabled else _("Disabled: no new deliveries until you enable it again."),
              "info")
    return redirect(url_for("notifications.index"))


@bp.route("/channels/<int:channel_id>/delete", methods=["POST"])
def delete(channel_id: int):
    channel = db.session.get(Channel, channel_id) or abort(404)
    if ActionForm().validate_on_submit():
        channel_service.delete(channel)
        flash(_("Deleted. Its pending deliveries were cancelled; its history is kept."), "info")
    return redirect(url_for("notifications.index"))


@bp.route("/channels/<int:channel_id>/test", methods=["POST"])
def test(channel_id: int):
    channel = db.session.get(Channel, channel_id) or abort(404)
    form = TestForm()
    if not form.validate_on_submit():
        flash(_("Choose an event to send."), "danger")
        return redirect(url_for("notifications.edit_webhook", channel_id=channel.id))
    delivery_id = channel_service.send_test(channel, form.hook.data)
    return redirect(url_for("deliveries.detail", delivery_id=delivery_id))
