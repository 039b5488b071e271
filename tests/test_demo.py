"""The demo shop: `flask demo seed` and `flask demo traffic` make the hooks fire for real."""
import threading

from werkzeug.serving import make_server

from extensions import db
from models import Event, Order, Product


def hooks_seen(app) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(db.select(Event.hook)))


def test_seed_creates_products_and_orders_in_every_state(app, runner):
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code == 0 and "3 products and 6 orders created" in result.output
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Product)) == 3
        statuses = set(db.session.scalars(db.select(Order.status)))
    assert statuses == {"completed", "paid", "cancelled", "refunded", "created"}
    assert {"order_create_hook", "order_pay_hook", "order_cancel_hook", "order_refund_hook",
            "order_finish_hook"} <= hooks_seen(app)
    assert runner.invoke(args=["demo", "seed"]).output.startswith("0 products")  # products are not duplicated


def test_traffic_plays_the_shop_against_the_api_over_http(app, runner):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = runner.invoke(args=["demo", "traffic", "--rate", "100", "--duration", "3",
                                     "--url", f"http://127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert "create order → 201" in result.output and "pay → 200" in result.output
    assert " → 5" not in result.output  # no server errors
    with app.app_context():
        # Orders were placed through the API (how many in 3 s depends on the machine's load: a
        # loaded 2-core machine placed 35 of the 300 asked for).
        assert db.session.scalar(db.select(db.func.count()).select_from(Order)) >= 10
    assert {"order_create_hook", "order_pay_hook", "order_finish_hook"} <= hooks_seen(app)
