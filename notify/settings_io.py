"""Settings as a file: the channels and their subscriptions as JSON (format in docs/settings.md).

Import is all-or-nothing: every channel in the file is validated with the same rules as the admin
form before anything is written.
"""
from __future__ import annotations

import json

from extensions import db
from models import Channel
from notify import channels as channel_service
from notify.transports import REGISTRY, transport_for

FORMAT_VERSION = 1


class ImportError_(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def export(include_secrets: bool = False) -> dict:
    out = []
    for channel in db.session.scalars(db.select(Channel).order_by(Channel.id)):
        config = dict(channel.config or {})
        if not include_secrets:
            config = transport_for(channel.kind).public_config(config)
        item = {"kind": channel.kind, "description": channel.description, "enabled": channel.enabled,
                "config": config, "hooks": list(channel.hooks or [])}
        if include_secrets:
            item["secret"] = channel.secret
        out.append(item)
    return {"format": "merchant-notify-settings", "version": FORMAT_VERSION, "channels": out}


def _key(kind: str, config: dict) -> tuple[str, str]:
    """What makes two channels the same: kind and target, credentials masked (an export without
    secrets masks them), so a file exported without secrets still matches its channels."""
    return kind, transport_for(kind).public_config(config or {}).get("url") or transport_for(kind).describe(config or {})


def import_(raw: str, replace: bool = False) -> dict:
    """Apply the settings in `raw` (JSON text). Returns counts; raises `ImportError_` listing every
    problem, in which case nothing was changed."""
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

    existing = {_key(c.kind, c.config): c for c in db.session.scalars(db.select(Channel))}
    problems, seen, created, updated = [], set(), 0, 0
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
        key = _key(kind, config)
        if key in seen:
            problems.append(f"{where}: the same {kind} target appears twice")
            continue
        seen.add(key)
        channel = existing.get(key)
        is_new = channel is None
        if is_new:
            channel = Channel(kind=kind)
        # Without --include-secrets in the export, an existing channel keeps its secret, and a
        # robot its URL (whose credential the export masked).
        if not is_new and config.get("url") == transport_for(kind).public_config(channel.config).get("url"):
            config = dict(config, url=channel.config.get("url"))
        secret = item.get("secret") if item.get("secret") is not None else channel.secret
        try:
            channel_service.apply(channel, config=config, secret=secret, hooks_=hooks_,
                                  enabled=bool(item.get("enabled", True)),
                                  description=str(item.get("description") or "")[:200])
        except channel_service.InvalidChannel as exc:
            problems += [f"{where}.{field}: {message}" for field, message in exc.errors.items()]
            continue
        if is_new:
            db.session.add(channel)
            created += 1
        else:
            updated += 1
    if problems:
        db.session.rollback()
        raise ImportError_(problems)
    deleted = 0
    if replace:
        for key, channel in existing.items():
            if key not in seen:
                channel_service.delete(channel)  # commits the rest of the import with it
                deleted += 1
    db.session.commit()
    return {"created": created, "updated": updated, "deleted": deleted}
