"""The deliveries page: filters and paging."""
import re
from datetime import datetime

from extensions import db
from models import Delivery
from notify import dispatch, hooks


def listed(html: str) -> list[str]:
    return re.findall(r'href="/deliveries/(dlv_[0-9a-f]+)"', html)


def seed(app, make_webhook):
    make_webhook("https://erp.example.com/h")
    made = {}
    with app.app_context():
        for hook, day in [("order_pay_hook", 1), ("order_pay_hook", 2), ("stock_alarm_hook", 2),
                          ("order_refund_hook", 3)]:
            (delivery_id,) = dispatch.record_event(hook, hooks.get(hook).sample).delivery_ids
            made[delivery_id] = (hook, day)
        db.session.commit()
        for delivery_id, (_, day) in made.items():
            db.session.get(Delivery, delivery_id).created_at = datetime(2026, 11, day, 12, 0)
        db.session.commit()
    return made


def test_filter_by_hook_and_by_days(app, login, make_webhook):
    made = seed(app, make_webhook)
    by = lambda pred: sorted(d for d, v in made.items() if pred(*v))  # noqa: E731
    assert sorted(listed(login.get("/deliveries/?hook=order_pay_hook").text)) == by(lambda h, d: h == "order_pay_hook")
    assert sorted(listed(login.get("/deliveries/?since=2026-11-02&until=2026-11-02").text)) == by(lambda h, d: d == 2)
    assert sorted(listed(login.get("/deliveries/?since=2026-11-02").text)) == by(lambda h, d: d >= 2)
    assert sorted(listed(login.get("/deliveries/?hook=order_pay_hook&until=2026-11-01").text)) == by(
        lambda h, d: h == "order_pay_hook" and d == 1)
    # An unknown hook is no filter; a malformed date is explained and ignored.
    assert len(listed(login.get("/deliveries/?hook=nope").text)) == 4
    page = login.get("/deliveries/?since=27/11/2026").text
    assert 'id="since-error"' in page and "Use a date like 2026-11-27." in page and len(listed(page)) == 4


def test_older_link_keeps_the_filters(app, login, make_webhook, monkeypatch):
    from blueprints import deliveries

    monkeypatch.setattr(deliveries, "PAGE_SIZE", 1)
    made = seed(app, make_webhook)
    page = login.get("/deliveries/?hook=order_pay_hook").text
    first = listed(page)
    older = re.search(r'href="(/deliveries/\?[^"]*before=[^"]+)"', page).group(1).replace("&amp;", "&")
    assert "hook=order_pay_hook" in older
    second = listed(login.get(older).text)
    assert len(first) == len(second) == 1 and first != second
    assert {made[first[0]][0], made[second[0]][0]} == {"order_pay_hook"}
