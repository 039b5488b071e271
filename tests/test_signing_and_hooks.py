"""The contract pieces: the signature test vector, the hook catalogue, the envelope."""
import json

import pytest

from notify import hooks, signing
from notify.dispatch import InvalidEvent, validate


def test_signature_matches_the_published_test_vector():
    assert signing.sign_base64("SECtest", 1700000000000) == "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="
    assert signing.sign("SECtest", 1700000000000) == "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"
    assert signing.sign("SECtest", "1700000000000") == signing.sign("SECtest", 1700000000000)


def test_signature_is_url_encoded_exactly_once():
    # Find a timestamp whose Base64 contains + and /, and check each becomes one %XX, never %25XX.
    for ts in range(1700000000000, 1700000000400):
        raw = signing.sign_base64("SECtest", ts)
        if "+" in raw and "/" in raw:
            token = signing.sign("SECtest", ts)
            assert "%2B" in token and "%2F" in token and "%25" not in token
            assert token.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=") == raw
            return
    pytest.fail("no timestamp with both + and / in range")


def test_generated_secrets_are_long_random_and_distinct():
    a, b = signing.generate_secret(), signing.generate_secret()
    assert a != b and a.startswith("whsec_") and len(a) >= 40


def test_mask_keeps_only_the_last_four_characters():
    assert signing.mask("whsec_abcdefghijklmnop") == "••••••••mnop"
    assert signing.mask("short") == "••••••••"
    assert signing.mask(None) == ""


def test_catalogue_has_the_nine_seed_hooks_in_their_groups():
    assert hooks.HOOK_NAMES == (
        "order_create_hook", "order_pay_hook", "order_cancel_hook", "order_refund_hook",
        "order_out_of_stock_hook", "order_finish_hook", "stock_alarm_hook", "key_stock_alarm_hook",
        "order_count_amount_hook",
    )
    groups = {group: [h.name for h in group_hooks] for group, _, group_hooks in hooks.grouped()}
    assert groups["inventory"] == ["stock_alarm_hook", "key_stock_alarm_hook"]
    assert groups["statistics"] == ["order_count_amount_hook"]
    assert len(groups["order"]) == 6


@pytest.mark.parametrize("hook", hooks.HOOKS, ids=lambda h: h.name)
def test_every_sample_payload_is_a_valid_event(hook):
    validate(hook.name, hook.sample)
    json.dumps(hook.sample)  # serialisable as-is


@pytest.mark.parametrize("hook_name, data, field", [
    ("order_paid", {"order": {}}, "event"),
    (None, {"order": {}}, "event"),
    ("order_pay_hook", [], "data"),
    ("order_pay_hook", "x", "data"),
    ("order_pay_hook", {"product": {}}, "data.order"),
    ("order_pay_hook", {"order": "A1"}, "data.order"),
    ("stock_alarm_hook", {"order": {}}, "data.product"),
    ("order_count_amount_hook", {"days": {}}, "data.days"),
])
def test_invalid_events_name_the_field(hook_name, data, field):
    with pytest.raises(InvalidEvent) as info:
        validate(hook_name, data)
    assert info.value.field == field
