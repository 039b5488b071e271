"""GET /api/v1/openapi.json: a valid OpenAPI 3.1 document, built from the schemas the API checks
with, and one the real server keeps to (schemathesis against a live server on loopback)."""
import threading
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)
from werkzeug.serving import make_server

from blueprints import api, shop_api
from notify import hooks, schemas

EXAMPLES_PER_OPERATION = 25  # per mode: about 20 s for the whole document on this machine


def test_document_is_valid_openapi_and_needs_no_token(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.json
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_document_describes_every_api_route(app, client):
    document = client.get("/api/v1/openapi.json").json
    described = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in (api.bp.name, shop_api.bp.name):
            path = rule.rule.replace("<", "{").replace(">", "}")
            routed |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == described


def test_document_embeds_the_schemas_the_api_checks_with_and_each_hooks_example(client):
    document = client.get("/api/v1/openapi.json").json
    components = document["components"]["schemas"]
    for hook in hooks.HOOKS:
        assert components[f"{hook.name}.data"] == schemas.for_hook(hook.name)
        body = document["webhooks"][hook.name]["post"]["requestBody"]["content"]["application/json"]
        assert body["example"] == schemas.example(hook.name)
    create = document["paths"]["/api/v1/orders"]["post"]
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= create["parameters"][0].items()
    assert set(create["responses"]) >= {"201", "400", "401", "409", "422"}


@pytest.fixture
def live_server(app):
    """The app behind a real HTTP server (werkzeug's, threaded) on a free loopback port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def test_the_live_server_answers_only_as_the_document_says(live_server, api_token, make_webhook):
    headers = {"Authorization": f"Bearer {api_token}"}
    make_webhook("https://a.example.com/h", hooks_=list(hooks.HOOK_NAMES))
    # Something to find: a product with keys, and an order of it.
    assert requests.post(f"{live_server}/api/v1/products", headers=headers, timeout=10, json={
        "path": "vpn", "name": "VPN", "price": "10.00", "currency": "CNY",
        "keys": {"enabled": True, "available": 3, "low_key_threshold": 1}}).status_code == 201
    assert requests.post(f"{live_server}/api/v1/orders", headers=headers, timeout=10,
                         json={"order_no": "A1", "product": "vpn"}).status_code == 201

    schema = schemathesis.openapi.from_url(f"{live_server}/api/v1/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    started, operations, failures = time.monotonic(), 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call(base_url=live_server, headers=headers, timeout=10)
                case.validate_response(response, checks=checks)

            try:
                run()
            except Exception as exc:  # collect every operation's failure, not only the first
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert operations == 13
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 60


def test_the_document_is_in_english_whatever_the_readers_language(client):
    """Built once per process: a first reader in Chinese must not fix its words for everyone."""
    from notify import openapi

    openapi._document.cache_clear()
    chinese = client.get("/api/v1/openapi.json?lang=zh_CN", headers={"Accept-Language": "zh-CN"}).json
    assert chinese["webhooks"]["order_pay_hook"]["post"]["summary"] == "Order Paid"
