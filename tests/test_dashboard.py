"""The dashboard: deliveries per day as a chart (with its figures in words), today's orders, and
the channels that need the merchant."""
import re
from decimal import Decimal

from extensions import db
from models import Channel, Order, Product
from models.base import utcnow
from notify import dispatch, hooks


def test_dashboard_counts_today_and_draws_the_last_14_days(app, login, worker, make_webhook, receiver_demo):
    demo = receiver_demo()
    make_webhook(demo.url, secret=demo.secret)
    broken = make_webhook("http://127.0.0.1:9/nothing-listens", hooks_=["stock_alarm_hook"])
    with app.app_context():
        for _ in range(3):
            dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample)
        db.session.get(Channel, broken).needs_attention = True
        product = Product(path="vpn", name="VPN", price=Decimal("128.00"), currency="CNY")
        db.session.add(product)
        db.session.flush()
        db.session.add(Order(order_no="D1", product_id=product.id, quantity=1, amount=Decimal("128.00"),
                             currency="CNY", status="paid", paid_at=utcnow()))
        db.session.commit()
    worker()
    assert login.get("/").location.endswith("/dashboard")
    page = login.get("/dashboard").text
    assert len(re.findall(r'<rect class="bar-ok"', page)) == 14
    figures = re.search(r"<tbody>(.*?)</tbody>", page, re.S).group(1)
    assert re.search(r"<tr><td>\d{4}-\d\d-\d\d</td><td>3</td><td>0</td><td>0</td></tr>", figures)  # today first
    assert "1 channel needs attention:" in page and "nothing-listens" in page
    assert re.search(r'<h2>Paid orders today</h2><p class="big">1</p>', page)
    assert "CN¥128.00" in page
    chinese = login.get("/dashboard?lang=zh_CN").text
    assert "仪表盘" in chinese or "概览" in chinese
    assert "¥128.00" in chinese
