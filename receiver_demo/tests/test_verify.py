import base64
from urllib.parse import quote_plus

import pytest
from werkzeug.datastructures import Headers

from verify import Verification, compute_signature, signature_base64, verify_headers

SECRET = "SECtest"
NOW = 1_700_000_000_000


def signed(ts=NOW, secret=SECRET):
    return {"X-Apsdai-Token": compute_signature(secret, ts), "X-Apsdai-Timestamp": str(ts)}


def check(headers, mode="signature", secret=SECRET, **kw):
    return verify_headers(headers, mode=mode, secret=secret, now_ms=NOW, **kw)


def test_vector_base64_and_token():
    assert signature_base64("SECtest", 1700000000000) == "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="
    assert compute_signature("SECtest", 1700000000000) == "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"
    assert compute_signature("SECtest", "1700000000000") == "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"


def test_plus_and_slash_are_url_encoded():
    # Find a timestamp whose Base64 holds both '+' and '/', then check each is encoded exactly once.
    ts = next(t for t in range(NOW, NOW + 10_000)
              if "+" in signature_base64(SECRET, t) and "/" in signature_base64(SECRET, t))
    raw, token = signature_base64(SECRET, ts), compute_signature(SECRET, ts)
    assert "%2B" in token and "%2F" in token and "%3D" in token
    assert not set("+/=") & set(token)
    assert token == raw.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert len(base64.b64decode(raw)) == 32


def test_signed_headers_accepted():
    assert check(signed()) == Verification(True, "")


@pytest.mark.parametrize("headers", [
    {"x-apsdai-token": compute_signature(SECRET, NOW), "x-apsdai-timestamp": str(NOW)},
    {"X-APSDAI-TOKEN": compute_signature(SECRET, NOW), "X-APSDAI-TIMESTAMP": str(NOW)},
    Headers([("x-Apsdai-Token", compute_signature(SECRET, NOW)), ("X-apsdai-timestamp", str(NOW))]),
])
def test_header_lookup_is_case_insensitive(headers):
    assert check(headers).ok is True


def test_wrong_secret():
    assert check(signed(secret="other")) == Verification(False, "signature does not match: check the secret")


def test_token_signed_for_another_timestamp_is_rejected():
    headers = {"X-Apsdai-Token": compute_signature(SECRET, NOW - 1), "X-Apsdai-Timestamp": str(NOW)}
    assert check(headers).reason == "signature does not match: check the secret"


def test_unencoded_base64_token_is_rejected():
    headers = {"X-Apsdai-Token": signature_base64(SECRET, NOW), "X-Apsdai-Timestamp": str(NOW)}
    assert check(headers).ok is False


def test_stale_and_future_name_the_direction():
    assert check(signed(NOW - 412_000)) == Verification(False, "timestamp is 412 s old (tolerance 300 s)")
    assert check(signed(NOW + 95_000), tolerance_s=60) == Verification(
        False, "timestamp is 95 s in the future (tolerance 60 s)")


def test_tolerance_boundary():
    assert check(signed(NOW - 300_000)).ok is True
    assert check(signed(NOW + 300_000)).ok is True
    # 300.001 s rounds up, so the reason never claims "300 s old (tolerance 300 s)".
    assert check(signed(NOW - 300_001)).reason == "timestamp is 301 s old (tolerance 300 s)"
    assert check(signed(NOW + 300_001)).reason == "timestamp is 301 s in the future (tolerance 300 s)"


def test_missing_headers():
    assert check({"X-Apsdai-Timestamp": str(NOW)}).reason == "missing X-Apsdai-Token header"
    assert check({"X-Apsdai-Token": "", "X-Apsdai-Timestamp": str(NOW)}).reason == "missing X-Apsdai-Token header"
    assert check({"X-Apsdai-Token": compute_signature(SECRET, NOW)}).reason == "missing X-Apsdai-Timestamp header"


@pytest.mark.parametrize("ts", ["17e11", "-1700000000000", " 1700000000000", "1700000000000.5",
                                "１７００", "1" * 20])
def test_malformed_timestamp(ts):
    headers = {"X-Apsdai-Token": compute_signature(SECRET, NOW), "X-Apsdai-Timestamp": ts}
    assert check(headers).reason == "X-Apsdai-Timestamp is not epoch milliseconds (digits only)"


def test_non_ascii_token_is_a_mismatch_not_a_crash():
    assert check({"X-Apsdai-Token": "é", "X-Apsdai-Timestamp": str(NOW)}).ok is False
    assert check({"X-Apsdai-Token": "é"}, mode="password", secret="pw").reason == "password does not match"


def test_password_mode():
    assert check({"X-Apsdai-Token": "hunter2", "X-Apsdai-Timestamp": str(NOW)}, mode="password",
                 secret="hunter2").ok is True
    assert check({"X-Apsdai-Token": "hunter2"}, mode="password", secret="hunter2").ok is True  # no timestamp
    # The timestamp is unsigned in password mode, so its age is not held against the request...
    assert check({"X-Apsdai-Token": "hunter2", "X-Apsdai-Timestamp": "1"}, mode="password",
                 secret="hunter2").ok is True
    # ...but a malformed one still is.
    assert check({"X-Apsdai-Token": "hunter2", "X-Apsdai-Timestamp": "soon"}, mode="password",
                 secret="hunter2").reason == "X-Apsdai-Timestamp is not epoch milliseconds (digits only)"
    assert check({"X-Apsdai-Token": "hunter3"}, mode="password",
                 secret="hunter2") == Verification(False, "password does not match")


def test_empty_secret_never_matches_empty_token():
    assert check({"X-Apsdai-Token": ""}, mode="password", secret="").ok is False
    assert check(signed(secret=""), secret="").ok is False


def test_unknown_mode_is_a_programming_error():
    with pytest.raises(ValueError):
        check(signed(), mode="hmac")


def test_reasons_never_reveal_secret_or_expected_token():
    secret = "whsec_TOPSECRETvalue"
    expected = compute_signature(secret, NOW)
    cases = [
        ({"X-Apsdai-Token": "x", "X-Apsdai-Timestamp": str(NOW)}, "signature"),
        ({"X-Apsdai-Token": expected, "X-Apsdai-Timestamp": str(NOW - 999_000)}, "signature"),
        ({"X-Apsdai-Token": expected, "X-Apsdai-Timestamp": "abc"}, "signature"),
        ({"X-Apsdai-Token": "x"}, "password"),
    ]
    for headers, mode in cases:
        result = check(headers, mode=mode, secret=secret)
        assert result.ok is False and result.reason
        for leak in (secret, expected, quote_plus(secret), signature_base64(secret, NOW)):
            assert leak not in result.reason


# -- X-Apsdai-Signature-256: the body signature ------------------------------------------------
BODY = '{"event":"order_pay_hook","data":{"order":{"order_no":"A1","amount":"128.00"}}}'.encode()


def test_body_signature_vector():
    # hex(HMAC-SHA256("SECtest", "1700000000000." + body)), computed independently of body_signature.
    import hashlib
    import hmac

    from verify import body_signature
    expected = hmac.new(b"SECtest", b"1700000000000." + BODY, hashlib.sha256).hexdigest()
    assert body_signature("SECtest", 1700000000000, BODY) == "sha256=" + expected


def test_a_signed_body_is_accepted_and_an_altered_one_refused():
    from verify import body_signature
    headers = dict(signed(), **{"X-Apsdai-Signature-256": body_signature(SECRET, NOW, BODY)})
    assert check(headers, body=BODY).ok
    result = check(headers, body=BODY.replace(b"128.00", b"1.00"))
    assert not result.ok and result.reason.startswith("body signature does not match")
    # Without the header (the seed's senders), the token alone decides.
    assert check(signed(), body=BODY).ok


def test_during_a_rotation_either_secret_is_accepted():
    from verify import body_signature
    old, new = "whsec_old_secret_value", "whsec_new_secret_value"
    # The sender signs the token with the old secret and the body with both, newest first.
    headers = dict(signed(secret=old), **{
        "X-Apsdai-Signature-256": f"{body_signature(new, NOW, BODY)}, {body_signature(old, NOW, BODY)}"})
    assert check(headers, secret=new, previous_secret=old, body=BODY).ok
    assert check(headers, secret=old, body=BODY).ok  # a receiver not yet switched
    assert not check(headers, secret=new, body=BODY).ok  # the token is still the old secret's
    assert not check(headers, secret="whsec_someone_else", previous_secret="x", body=BODY).ok
