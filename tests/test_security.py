"""Locks on the admin's door (issue 12): security headers on every response, sessions that end,
logins that cost the same for known and unknown users, throttled password guessing, and
credentials in the curl block only after an explicit reveal."""
from __future__ import annotations

import pytest

EXPECTED_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def assert_security_headers(response):
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code, response.request.path)


# -- headers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method, url, status", [
    ("GET", "/login", 302),
    ("GET", "/dashboard", 200),
    ("GET", "/settings/notifications/", 200),
    ("GET", "/static/app.css", 200),
    ("GET", "/static/app.js", 200),
    ("GET", "/no-such-page", 404),
    ("GET", "/logout", 405),
    ("POST", "/api/v1/events", 401),
    ("GET", "/metrics", 200),
])
def test_every_response_carries_the_security_headers(login, method, url, status):
    response = login.open(url, method=method)
    assert response.status_code == status
    assert_security_headers(response)


def test_a_server_error_carries_them_too(app_env, admin):
    from app import create_app

    app = create_app({"TESTING": False, "PROPAGATE_EXCEPTIONS": False})

    @app.route("/boom")
    def boom():
        raise RuntimeError("boom")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert_security_headers(response)


def test_no_template_has_inline_script_or_style():
    """What the policy forbids must not be in the pages: it would be silently blocked."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "templates"
    offending = []
    for path in root.rglob("*.html"):
        if "messages" in path.relative_to(root).parts:
            continue  # email bodies, not pages: mail clients need inline styles
        text = path.read_text()
        for pattern in (r"\sstyle\s*=", r"<style", r"\son[a-z]+\s*=", r"<script(?![^>]*\ssrc=)", r"javascript:"):
            if re.search(pattern, text, re.IGNORECASE):
                offending.append((str(path.relative_to(root)), pattern))
    assert offending == []
