"""Settings › Notifications › Event catalogue: each hook's JSON Schema and example body, and a
Test that sends the hook's sample to a chosen channel.

Everything shown comes from notify.schemas (`for_hook`, `example`), the source docs/webhooks.md
and the OpenAPI document are generated from, so the three cannot disagree. The Test is the
notifications page's own (`notify.channels.send_test`): same queue, signing and limits.
"""
from __future__ import annotations

import json

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required

from extensions import db
from forms import ActionForm
from models import Channel
from notify import channels as channel_service
from notify import hooks, schemas

bp = Blueprint("catalogue", __name__, url_prefix="/settings/catalogue")


@bp.before_request
@login_required
def require_login():
    return None


def _enabled_channels() -> list[Channel]:
    return db.session.scalars(db.select(Channel).where(Channel.enabled.is_(True))
                              .order_by(Channel.kind, Channel.id)).all()


@bp.route("/")
def index():
    channels = _enabled_channels()
    entries = {hook.name: {"hook": hook,
                           "schema": json.dumps(schemas.for_hook(hook.name), indent=2, ensure_ascii=False),
                           "example": json.dumps(schemas.example(hook.name), indent=2, ensure_ascii=False),
                           # Every enabled channel may be chosen, subscribed or not: a Test is how a
                           # merchant sees what a hook would look like before subscribing to it.
                           "choices": [(c.id, channel_service.choice_label(c), hook.name in (c.hooks or []))
                                       for c in channels]}
               for hook in hooks.HOOKS}
    return render_template("catalogue/index.html", groups=hooks.grouped(), entries=entries, form=ActionForm(),
                           has_channels=bool(channels))


@bp.route("/<hook_name>/test", methods=["POST"])
def test(hook_name: str):
    """Send `hook_name`'s sample to the chosen enabled channel; show the delivery's live result."""
    if hook_name not in hooks.HOOKS_BY_NAME:
        abort(404)
    back = url_for("catalogue.index") + f"#{hook_name}"
    if not ActionForm().validate_on_submit():
        flash(_("The form expired; try again."), "danger")
        return redirect(back)
    raw = request.form.get("channel", "")
    channel = db.session.get(Channel, int(raw)) if raw.isdigit() and len(raw) <= 9 else None
    if channel is None or not channel.enabled:
        flash(_("Choose an enabled channel to send the test to."), "danger")
        return redirect(back)
    delivery_id = channel_service.send_test(channel, hook_name)
    return redirect(url_for("deliveries.detail", delivery_id=delivery_id))
