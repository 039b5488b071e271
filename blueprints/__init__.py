"""One blueprint per area of the admin, plus the JSON API."""


def register_blueprints(app):
    from blueprints import api, auth, catalogue, dashboard, deliveries, general, metrics, notifications, shop_api, tokens

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(notifications.bp)
    app.register_blueprint(catalogue.bp)
    app.register_blueprint(general.bp)
    app.register_blueprint(deliveries.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(shop_api.bp)
    app.register_blueprint(metrics.bp)
