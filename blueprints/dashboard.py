"""The dashboard: what was delivered lately, what needs the merchant, today's orders."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, render_template
from flask_login import login_required

from extensions import db
from models import Channel
from notify import shop_settings, stats
from shop import report

bp = Blueprint("dashboard", __name__)


@bp.route("/dashboard")
@login_required
def index():
    days = stats.deliveries_per_day()
    settings = shop_settings.effective()
    tz_name = settings.timezone
    today = datetime.now(ZoneInfo(tz_name)).date()
    return render_template("dashboard.html", days=days, peak=max([d.total for d in days] + [1]),
                           attention=stats.channels_needing_attention(),
                           channels=db.session.scalar(db.select(db.func.count()).select_from(Channel)),
                           orders=report.day_figures(today, ZoneInfo(tz_name), settings.currency),
                           currency=settings.currency)
