"""Settings › Configuration › Notifications: the methods (notify.channels.KINDS), WebHook endpoints, and Test."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required

from extensions import db
from forms import ActionForm, ReportTimeForm, RotateForm, SettingsImportForm, TestForm
from models import Channel
from notify import channels as channel_service
from models.base import local_to_utc, utc_to_local, utcnow
from notify import hooks, probe, recovery, rules, settings_io, shop_settings, signing
from notify.channels import BY_PATH, KINDS, kind_for
from notify.channels.webhook.transport import WebhookTransport
from shop import report

bp = Blueprint("notifications", __name__, url_prefix="/settings/notifications")


@bp.before_request
@login_required
def require_login():
    return None


@bp.app_template_global()
def mask_secret(secret):
    return signing.mask(secret)


@bp.app_template_global()
def rules_summary(channel: Channel) -> str:
    """The channel's filters and quiet hours in a few words ("≥ ¥100.00 · 2 products · quiet 22:00–08:00")."""
    return rules.summary(channel.rules, shop_settings.effective().currency)


@bp.app_template_global()
def channel_url(channel: Channel) -> str:
    return url_for("notifications.edit_channel", path=kind_for(channel.kind).path, channel_id=channel.id)


def _kind_or_404(path: str) -> str:
    """The kind whose pages are under /settings/notifications/<path>/."""
    kind = BY_PATH.get(path)
    if kind is None:
        abort(404)
    return kind.name


def _channel_or_404(channel_id: int, kind: str | None = None) -> Channel:
    channel = db.session.get(Channel, channel_id)
    if channel is None or (kind is not None and channel.kind != kind):
        abort(404)
    return channel


@bp.route("/")
def index():
    channels = db.session.scalars(db.select(Channel).order_by(Channel.kind, Channel.id)).all()
    last = channel_service.last_attempts([c.id for c in channels])
    methods, extra = [], {}
    for kind in KINDS.values():
        of_kind = [c for c in channels if c.kind == kind.name]
        methods.append({
            "kind": kind.name, "kind_info": kind, "label": kind.label, "path": kind.path, "channels": of_kind,
            "enabled": any(c.enabled for c in of_kind),
            "needs_attention": any(c.needs_attention for c in of_kind),
        })
        extra.update(kind.method_context(of_kind, last))
    return render_template("notifications/index.html", methods=methods, last=last, groups=hooks.grouped(),
                           action_form=ActionForm(), **extra, report_form=ReportTimeForm(time=report.report_time()),
                           report_last=report.last_run(), timezone=shop_settings.effective().timezone,
                           demo_url=current_app.config["RECEIVER_DEMO_URL"], no_channels=not channels)


@bp.route("/report-time", methods=["POST"])
def report_time():
    form = ReportTimeForm()
    if form.validate_on_submit():
        report.set_report_time(form.time.data)
        db.session.commit()
        flash(_("The daily report will be sent at %(time)s (%(tz)s).", time=form.time.data,
                tz=shop_settings.effective().timezone), "success")
    else:
        flash(" ".join(str(error) for error in form.time.errors), "danger")
    return redirect(url_for("notifications.index") + "#daily-report")


def _save(form, channel: Channel) -> bool:
    try:
        channel_service.apply(channel, config=form.config(), secret=form.effective_secret(), hooks_=form.hooks.data,
                              enabled=form.enabled.data, description=(form.description.data or "").strip(),
                              rules_=form.rules_value())
    except channel_service.InvalidChannel as exc:
        for field_name, message in exc.errors.items():
            form.error_field(field_name).errors.append(message)
        return False
    return True


def _render_form(form, kind: str, channel: Channel | None):
    extra = {}
    if channel is not None:
        extra = {"test_form": TestForm(), "action_form": ActionForm(), "rotate_form": RotateForm(),
                 "last": channel_service.last_attempts([channel.id]).get(channel.id)}
    info = kind_for(kind)
    return render_template("notifications/channel_form.html", form=form, kind=kind, kind_info=info, channel=channel,
                           label=info.label, path=info.path, groups=hooks.grouped(), **info.form_context(), **extra)


@bp.route("/webhooks/demo", methods=["POST"])
def add_demo_webhook():
    """One click from a fresh install to a WebHook that works: the receiver demo `make run` started."""
    config = current_app.config
    if not config["RECEIVER_DEMO_URL"] or not ActionForm().validate_on_submit():
        abort(404)
    channel = Channel(kind=WebhookTransport.kind)
    channel_service.apply(channel, config={"url": config["RECEIVER_DEMO_URL"], "auth_mode": "signature"},
                          secret=config["RECEIVER_DEMO_SECRET"], hooks_=list(hooks.HOOK_NAMES), enabled=True,
                          description=_("Receiver demo (make run)"))
    db.session.add(channel)
    db.session.commit()
    flash(_("The receiver demo is set up as a WebHook. Press Send test: the result shows here, and the demo's "
            "page lists what it received."), "success")
    return redirect(channel_url(channel))


@bp.route("/<path>/new", methods=["GET", "POST"])
def new_channel(path: str):
    kind = _kind_or_404(path)
    form = kind_for(kind).form()
    if request.method == "GET":
        form.hooks.data = list(hooks.HOOK_NAMES)
    if form.validate_on_submit():
        channel = Channel(kind=kind)
        if _save(form, channel):
            db.session.add(channel)
            db.session.commit()
            flash(_("%(method)s saved. Send a test to check that it arrives.", method=kind_for(kind).label), "success")
            return redirect(channel_url(channel))
    return _render_form(form, kind, None)


@bp.route("/<path>/<int:channel_id>", methods=["GET", "POST"])
def edit_channel(path: str, channel_id: int):
    kind = _kind_or_404(path)
    channel = _channel_or_404(channel_id, kind)
    form = kind_for(kind).form(channel=channel)
    if request.method == "GET":
        form.load(channel)
    if form.validate_on_submit():
        if _save(form, channel):
            db.session.commit()
            flash(_("%(method)s saved.", method=kind_for(kind).label), "success")
            return redirect(channel_url(channel))
        db.session.rollback()
    return _render_form(form, kind, channel)


@bp.route("/webhooks/<int:channel_id>/secret")
def reveal_secret(channel_id: int):
    """The secret in clear, for the reveal and copy buttons. No caching anywhere on the way."""
    channel = _channel_or_404(channel_id, WebhookTransport.kind)
    response = jsonify({"secret": channel.secret or ""})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/webhooks/<int:channel_id>/regenerate", methods=["POST"])
def regenerate_secret(channel_id: int):
    """A new secret; with a window, the old one keeps signing until it ends (docs/webhooks.md)."""
    channel = _channel_or_404(channel_id, WebhookTransport.kind)
    form = RotateForm()
    if form.validate_on_submit():
        hours = int(form.window.data)
        channel_service.rotate_secret(channel, timedelta(hours=hours))
        db.session.commit()
        if hours:
            flash(_("A new secret was generated. For %(hours)d hours the old one keeps signing X-Apsdai-Token and "
                    "both sign X-Apsdai-Signature-256: update your receiver before then.", hours=hours), "warning")
        else:
            flash(_("A new secret was generated. Update your receiver with it: requests are now signed with the "
                    "new secret."), "warning")
    return redirect(channel_url(channel))


@bp.route("/webhooks/<int:channel_id>/signature-check", methods=["GET", "POST"])
def signature_check(channel_id: int):
    """POST: send a request signed with a wrong secret (through a worker); GET: its result, which
    the page reloads until it has (notify.probe)."""
    channel = _channel_or_404(channel_id, WebhookTransport.kind)
    if request.method == "POST":
        if ActionForm().validate_on_submit():
            probe.request_check(channel)
        return redirect(url_for("notifications.signature_check", channel_id=channel.id))
    return render_template("notifications/signature_check.html", channel=channel, action_form=ActionForm())


@bp.route("/channels/<int:channel_id>/toggle", methods=["POST"])
def toggle(channel_id: int):
    channel = db.session.get(Channel, channel_id) or abort(404)
    if ActionForm().validate_on_submit():
        channel.enabled = not channel.enabled
        if not channel.enabled:
            flash(_("Disabled: no new deliveries until you enable it again."), "info")
            db.session.commit()
            return redirect(url_for("notifications.index"))
        # Enabled again: offer what it missed meanwhile.
        since = channel.failing_since or channel.updated_at
        channel.failing_since = None
        db.session.commit()
        flash(_("Enabled. Deliveries that failed or were missed while it was off can be sent now."), "info")
        return redirect(url_for("notifications.recover", channel_id=channel.id, since=_local_input(since)))
    return redirect(url_for("notifications.index"))


def _local_input(moment: datetime) -> str:
    """A stored (UTC) time as the value of an `<input type="datetime-local">`, in the merchant's time."""
    return utc_to_local(moment, shop_settings.effective().timezone).strftime("%Y-%m-%dT%H:%M")


@bp.route("/channels/<int:channel_id>/recover", methods=["GET", "POST"])
def recover(channel_id: int):
    """Preview, then send again, a channel's failed, dead and cancelled deliveries since a moment,
    and the events it missed meanwhile."""
    channel = _channel_or_404(channel_id)
    raw = request.values.get("since") or _local_input(utcnow() - timedelta(days=1))
    try:
        since = local_to_utc(datetime.strptime(raw, "%Y-%m-%dT%H:%M"), shop_settings.effective().timezone)
    except (ValueError, OverflowError):  # OverflowError: year 1 east of UTC
        flash(_("Give the time as YYYY-MM-DDTHH:MM."), "danger")
        return redirect(url_for("notifications.recover", channel_id=channel.id))
    if request.method == "POST" and ActionForm().validate_on_submit():
        queued = recovery.recover(channel, since)
        flash(_("%(n)d deliveries queued.", n=queued), "success")
        return redirect(url_for("deliveries.index", channel=channel.id))
    counts = recovery.preview(channel, since)
    return render_template("notifications/recover.html", channel=channel, since=raw, counts=counts,
                           total=sum(counts["resend"].values()) + sum(counts["missed"].values()),
                           hook_labels={h.name: h.label for h in hooks.HOOKS}, action_form=ActionForm())


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
        return redirect(channel_url(channel))
    delivery_id = channel_service.send_test(channel, form.hook.data, mentions=form.mentions.data)
    return redirect(url_for("deliveries.detail", delivery_id=delivery_id))


@bp.route("/file")
def settings_file():
    return render_template("notifications/settings_file.html", form=SettingsImportForm(), result=None, problems=None)


@bp.route("/file/export")
def export_settings():
    """The settings file as a download; with ?secrets=1, secrets and robots' URLs included."""
    include_secrets = request.args.get("secrets") == "1"
    text = json.dumps(settings_io.export(include_secrets=include_secrets), indent=2, ensure_ascii=False) + "\n"
    name = "merchant-notify-settings" + ("-with-secrets" if include_secrets else "") + ".json"
    return current_app.response_class(text, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@bp.route("/file/import", methods=["POST"])
def import_settings():
    """Import an uploaded settings file; the page lists what it added, replaced, deleted or left alone."""
    form = SettingsImportForm()
    result = problems = None
    if form.validate_on_submit():
        try:
            raw = form.file.data.read().decode("utf-8")
        except UnicodeDecodeError:
            problems = [_("The file is not UTF-8 text.")]
        else:
            try:
                result = settings_io.import_(raw, replace=form.replace.data)
            except settings_io.ImportError_ as exc:
                problems = exc.problems
    return render_template("notifications/settings_file.html", form=form, result=result, problems=problems,
                           labels={name: kind.label for name, kind in KINDS.items()})
