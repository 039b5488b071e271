"""API tokens for the merchant's shop: create (shown once), list, revoke."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import login_required

from extensions import db
from forms import ActionForm, TokenForm
from models import ApiToken
from models.base import utcnow

bp = Blueprint("tokens", __name__, url_prefix="/settings/tokens")


@bp.before_request
@login_required
def require_login():
    return None


@bp.route("/", methods=["GET", "POST"])
def index():
    form = TokenForm()
    new_token = None
    if form.validate_on_submit():
        token, new_token = ApiToken.issue(form.name.data.strip())
        db.session.add(token)
        db.session.commit()
        form = TokenForm(formdata=None)
    tokens = db.session.scalars(db.select(ApiToken).order_by(ApiToken.id.desc())).all()
    return render_template("tokens/index.html", form=form, tokens=tokens, new_token=new_token,
                           action_form=ActionForm())


@bp.route("/<int:token_id>/revoke", methods=["POST"])
def revoke(token_id: int):
    token = db.session.get(ApiToken, token_id) or abort(404)
    if ActionForm().validate_on_submit() and token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()
        flash(_("Token “%(name)s” revoked: requests with it are now refused.", name=token.name), "info")
    return redirect(url_for("tokens.index"))
