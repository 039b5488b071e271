"""The documentation shows what the product really sends."""
import json
import re
from pathlib import Path

from notify import hooks, signing

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_webhook_docs_have_an_example_envelope_per_hook_matching_the_samples():
    text = (DOCS / "webhooks.md").read_text(encoding="utf-8")
    for hook in hooks.HOOKS:
        section = re.search(rf"#### `{hook.name}`.*?```json\n(.*?)```", text, re.S)
        assert section, f"no example for {hook.name}"
        example = json.loads(section.group(1))
        assert example["event"] == hook.name and example["data"] == hook.sample
        assert set(example) == {"id", "event", "created_at", "test", "data"}


def test_webhook_docs_state_the_test_vector_the_code_produces():
    text = (DOCS / "webhooks.md").read_text(encoding="utf-8")
    assert f"X-Apsdai-Token: {signing.sign('SECtest', 1700000000000)}" in text


def test_webhook_docs_state_the_body_signature_vector_the_code_produces():
    text = (DOCS / "webhooks.md").read_text(encoding="utf-8")
    expected = signing.body_signature("SECtest", 1700000000000, b'{"a":1}')
    assert f"X-Apsdai-Signature-256: {expected}" in text


def test_webhook_docs_publish_the_schemas_the_code_checks():
    """docs/webhooks.md carries the schemas generated from notify/schemas.py; after changing a schema,
    run `python -m notify.schemas --write`."""
    from notify import schemas

    text = (DOCS / "webhooks.md").read_text(encoding="utf-8")
    assert schemas.docs_with_schemas(text) == text, "docs/webhooks.md is stale: python -m notify.schemas --write"
    published = dict(re.findall(r"#### Schema of `(\w+)`\n\n```json\n(.*?)```", text, re.S))
    assert set(published) == set(hooks.HOOK_NAMES)
    for name, schema in published.items():
        assert json.loads(schema) == schemas.for_hook(name)
