"""`GET /metrics` for Prometheus. Without METRICS_TOKEN only loopback clients may read it; with it,
scrapers send `Authorization: Bearer <METRICS_TOKEN>`."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request

from notify import metrics

bp = Blueprint("metrics", __name__)


@bp.route("/metrics")
def scrape():
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            abort(401)
    elif request.remote_addr not in ("127.0.0.1", "::1"):
        abort(403)
    return Response(metrics.render(), mimetype="text/plain; version=0.0.4; charset=utf-8")
