"""Channel kinds, and the channels themselves.

Each kind lives in its own folder, `notify/channels/<kind>/`: its transport (prepare, send,
classify: notify/channels/base.py is the contract), its settings form and their rules, its
templates (settings fields, its card on the notifications page, its messages), its rate limit and
its texts (its reason codes too). Its package declares one `Kind`; `FOLDERS` below lists them, and
the rest of the product reaches a kind only through this registry (`KINDS`, `kind_for`), so adding
a kind touches its folder, one line here, a migration if it needs a column, and the catalogues. What every robot shares is in `robot.py`
(transport), `robot_form.py` and the `_*.html` / `robot.md` templates beside them.

The channel service (apply, rotate_secret, delete, send_test, …) is `notify/channels/service.py`,
re-exported here: `from notify import channels; channels.apply(...)`.
"""
from __future__ import annotations

from importlib import import_module
from pathlib import Path

from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader

from notify import reasons
from notify.channels.base import (PERMANENT, SUCCESS, TRANSIENT, CannotPrepare, DeliverySettings, Kind,
                                  OutgoingRequest, Outcome, Transport)

# The kinds' folders, in the order of the seed's page, then Feishu: the one list to extend.
FOLDERS = ("email", "dingtalk", "wecom", "webhook", "feishu")

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    import_module(f"notify.channels.{folder}").KIND for folder in FOLDERS)}

# Kind → transport class (tests may add a kind of their own here).
REGISTRY: dict[str, type[Transport]] = {name: kind.transport for name, kind in KINDS.items()}
# (kind, label) in the page's order.
METHODS = tuple((name, kind.label) for name, kind in KINDS.items())
# The URL segment of each kind's pages, and back.
PATHS = {name: kind.path for name, kind in KINDS.items()}
BY_PATH = {kind.path: kind for kind in KINDS.values()}

TEMPLATES = Path(__file__).resolve().parent

# Each kind's reason codes join the one table that puts reasons into words.
for _kind in KINDS.values():
    assert not set(_kind.reasons) & set(reasons.TEXTS), f"{_kind.name}: reason codes defined twice"
    reasons.TEXTS.update(_kind.reasons)
del _kind


def kind_for(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise LookupError(f"no channel kind {name!r}") from None


def transport_for(kind: str) -> type[Transport]:
    try:
        return REGISTRY[kind]
    except KeyError:
        raise LookupError(f"no transport for channel kind {kind!r}") from None


def init_app(app) -> None:
    """Serve the kinds' templates as `channels/<kind>/<name>` (and the robots' shared ones as
    `channels/<name>`), after the app's own `templates/`."""
    app.jinja_loader = ChoiceLoader([app.jinja_loader, PrefixLoader({"channels": FileSystemLoader(str(TEMPLATES))})])


# Last: the service imports notify.dispatch, which imports `transport_for` from here.
from notify.channels.email.transport import tell_merchant  # noqa: E402  (the product's own notices go by email)
from notify.channels.service import (KEEP, InvalidChannel, apply, choice_label, delete, last_attempts,  # noqa: E402
                                     rotate_secret, send_test)

__all__ = ["BY_PATH", "FOLDERS", "KINDS", "METHODS", "PATHS", "PERMANENT", "REGISTRY", "SUCCESS", "TEMPLATES", "TRANSIENT",
           "CannotPrepare", "DeliverySettings", "InvalidChannel", "KEEP", "Kind", "OutgoingRequest", "Outcome", "Transport",
           "apply", "choice_label", "delete", "init_app", "kind_for", "last_attempts", "rotate_secret", "send_test",
           "tell_merchant", "transport_for"]
