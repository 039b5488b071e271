"""One blueprint per area of the admin, plus the JSON API."""
from __future__ import annotations

from flask import render_template
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

# What an admin error page says, by status: Werkzeug's own pages are English only.
ERRORS = {
    400: (_l("Bad request"), _l("The page could not use what the browser sent. If you were filling in a form, "
                                "reload it and try again.")),
    403: (_l("Not allowed"), _l("You may not open this page.")),
    404: (_l("Page not found"), _l("There is no page at this address. Check it, or start again from the "
                                   "dashboard.")),
    405: (_l("Not possible here"), _l("This address does not take this kind of request.")),
    413: (_l("Too large"), _l("What was sent is larger than this page accepts.")),
}


def error_page(exc: HTTPException):
    """An HTML error page for the admin in the reader's language, with the exception's status (4xx).
    The JSON APIs answer their errors themselves (blueprints/api.py, blueprints/shop_api.py)."""
    code = exc.code or 500
    if code >= 500:
        # A page needs the database (the login, the settings); when the server itself failed it
        # may be what failed, so Werkzeug's plain page it is.
        return exc
    headline, explanation = ERRORS.get(code, (_l("This request cannot be answered"), exc.name))
    return render_template("error.html", code=code, headline=headline, explanation=explanation), code


def register_blueprints(app):
    from blueprints import api, auth, dashboard, deliveries, general, metrics, notifications, shop_api, tokens

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(notifications.bp)
    app.register_blueprint(general.bp)
    app.register_blueprint(deliveries.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(shop_api.bp)
    app.register_blueprint(metrics.bp)
    app.register_error_handler(HTTPException, error_page)
