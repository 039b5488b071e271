"""Settings as a file: the channels and their subscriptions as JSON (format in docs/settings.md).

Import is all-or-nothing: every channel in the file is validated with the same rules as the admin
form before anything is written. It never merges two different channels: a channel whose target
holds a credential (a robot's URL) is the same channel only when the credential is the same, and
an export without secrets, which masks the credential, carries a fingerprint of it instead
(`fingerprint`): an HMAC-SHA256 keyed from SECRET_KEY, so the file alone gives no way to test
guesses of a short token offline, and a re-import into the same install still finds its channels.
"""
from __future__ import annotations

import hashlib
import hmac
import json

from flask import current_app

from extensions import db
from models import Channel
from notify import channels as channel_service
from notify.channels import REGISTRY, transport_for

FORMAT_VERSION = 1


class ImportError_(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


# How signing.mask starts a masked secret: a credential holding it came from an export without secrets.
MASK = "••••••••"


def fingerprint(kind: str, credential: str) -> str:
    """What identifies a channel whose credential is masked: `hmac-sha256:` + hex HMAC-SHA256 of
    kind and credential under a key derived from SECRET_KEY. Keyed, because robots' tokens may be
    as short as 8 characters and the masked URL shows the last 4 of longer ones: a plain hash would
    let whoever holds the file try tokens offline until one matched."""
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode("utf-8") if isinstance(secret, str) else secret
    key = hmac.new(secret, b"merchant-notify settings-file fingerprint", hashlib.sha256).digest()
    return "hmac-sha256:" + hmac.new(key, f"{kind}\0{credential}".encode("utf-8"), hashlib.sha256).hexdigest()


def export(include_secrets: bool = False) -> dict:
    out = []
    for channel in db.session.scalars(db.select(Channel).order_by(Channel.id)):
        transport = transport_for(channel.kind)
        config = dict(channel.config or {})
        if not include_secrets:
            config = transport.public_config(config)
        item = {"kind": channel.kind, "description": channel.description, "enabled": channel.enabled,
                "config": config, "hooks": list(channel.hooks or [])}
        if channel.rules:
            item["rules"] = channel.rules
        credential = transport.target_credential(channel.config or {})
        if credential:
            item["fingerprint"] = fingerprint(channel.kind, credential)
        if include_secrets:
            item["secret"] = channel.secret
        out.append(item)
    return {"format": "merchant-notify-settings", "version": FORMAT_VERSION, "channels": out}


def _identity(kind: str, config: dict, given_fingerprint=None) -> tuple | None:
    """What makes two channels the same. For a kind whose target holds a credential: the kind and
    a fingerprint of the credential (computed, or as the file gives it when the credential is
    masked). For the others: the kind and the target (the URL, the recipients). None when the
    credential is masked and the file has no fingerprint (a file from an older version): such an
    entry cannot be told apart from another robot whose masked URL looks the same."""
    transport = transport_for(kind)
    credential = transport.target_credential(config)
    if credential is None:
        return "target", kind, transport.public_config(config).get("url") or transport.describe(config)
    if MASK not in credential:
        return "credential", kind, fingerprint(kind, credential)
    if isinstance(given_fingerprint, str) and given_fingerprint:
        return "credential", kind, given_fingerprint
    return None


def _shown(channel_or_item) -> dict:
    """A channel as the import's result names it: kind, target with credentials masked, description."""
    if isinstance(channel_or_item, Channel):
        kind, config, description = channel_or_item.kind, channel_or_item.config or {}, channel_or_item.description
    else:
        kind, config = channel_or_item["kind"], channel_or_item.get("config") or {}
        description = str(channel_or_item.get("description") or "")
    return {"kind": kind, "target": transport_for(kind).describe(config), "description": description or ""}


def import_(raw: str, replace: bool = False) -> dict:
    """Apply the settings in `raw` (JSON text). Returns the counts (`created`, `updated`,
    `deleted`) and which channels were replaced by the file's settings (`updated_channels`),
    deleted (`deleted_channels`, with `replace`) and left as they are (`skipped_channels`: masked
    robots from an older file, which says too little to tell which robot it means), each as
    `{"kind", "target" (masked), "description"}`. Raises `ImportError_` listing every problem, in
    which case nothing was changed."""
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImportError_([f"not valid JSON: {exc}"]) from None
    if not isinstance(doc, dict) or doc.get("format") != "merchant-notify-settings":
        raise ImportError_(['not a settings file: "format" must be "merchant-notify-settings"'])
    if doc.get("version") != FORMAT_VERSION:
        raise ImportError_([f"unsupported version {doc.get('version')!r}; this version reads {FORMAT_VERSION}"])
    items = doc.get("channels")
    if not isinstance(items, list):
        raise ImportError_(['"channels" must be a list'])

    channels = list(db.session.scalars(db.select(Channel).order_by(Channel.id)))
    identities = [(_identity(c.kind, c.config or {}), c) for c in channels]
    existing = {}
    for key, channel in identities:
        existing.setdefault(key, channel)
    problems, seen, kept = [], set(), set()
    result = {"created": 0, "updated": 0, "deleted": 0, "updated_channels": [], "deleted_channels": [],
              "skipped_channels": []}
    for index, item in enumerate(items):
        where = f"channels[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be an object")
            continue
        kind = item.get("kind")
        if kind not in REGISTRY:
            problems.append(f"{where}.kind: {kind!r} is not a channel kind this version can import "
                            f"({', '.join(sorted(REGISTRY))})")
            continue
        config = item.get("config")
        hooks_ = item.get("hooks")
        if not isinstance(config, dict):
            problems.append(f"{where}.config: must be an object")
            continue
        if not isinstance(hooks_, list) or not all(isinstance(h, str) for h in hooks_):
            problems.append(f"{where}.hooks: must be a list of hook names")
            continue
        transport = transport_for(kind)
        key = _identity(kind, config, item.get("fingerprint"))
        masked = MASK in (transport.target_credential(config) or "")
        if key is None:
            # An older export without secrets: only the last 4 characters (or nothing) of the
            # credential are left, so a robot here whose masked URL looks the same may be another
            # robot. Never update on that; keep such robots (also from --replace) and say so.
            shown_url = transport.public_config(config).get("url")
            alike = [c for c in channels if c.kind == kind and transport.public_config(c.config or {}).get("url") == shown_url]
            if alike:
                kept.update(c.id for c in alike)
                result["skipped_channels"].append(_shown(item))
                continue
        elif key in seen:
            problems.append(f"{where}: the same {kind} target appears twice")
            continue
        channel = existing.get(key) if key is not None else None
        if masked and channel is None:
            param = getattr(transport, "credential_param", "credential")
            problems.append(f"{where}.url: its {param} is masked (an export without secrets) and no {kind} "
                            f"robot here has it: import a file exported with --include-secrets, or add the "
                            f"robot with its whole URL")
            continue
        seen.add(key)
        is_new = channel is None
        if is_new:
            channel = Channel(kind=kind)
        else:
            replaced = _shown(channel)
            if masked:  # the export masked the credential: the channel keeps its own URL
                config = dict(config, url=channel.config.get("url"))
        # Without --include-secrets in the export, an existing channel keeps its secret.
        secret = item.get("secret") if item.get("secret") is not None else channel.secret
        # A file without "rules" (from a version before filters) leaves a channel's own as they are;
        # "rules": null removes them.
        rules_ = item["rules"] if "rules" in item else channel_service.KEEP
        try:
            channel_service.apply(channel, config=config, secret=secret, hooks_=hooks_,
                                  enabled=bool(item.get("enabled", True)),
                                  description=str(item.get("description") or "")[:200], rules_=rules_)
        except channel_service.InvalidChannel as exc:
            problems += [f"{where}.{field}: {message}" for field, message in exc.errors.items()]
            continue
        if is_new:
            db.session.add(channel)
            result["created"] += 1
        else:
            result["updated"] += 1
            result["updated_channels"].append(replaced)
    if problems:
        db.session.rollback()
        raise ImportError_(problems)
    if replace:
        for key, channel in identities:
            if key not in seen and channel.id not in kept:
                result["deleted_channels"].append(_shown(channel))
                channel_service.delete(channel)  # commits the rest of the import with it
                result["deleted"] += 1
    db.session.commit()
    return result
