"""WeCom group robot (企业微信群机器人)."""
from __future__ import annotations

from notify.channels.base import Kind
from notify.channels.wecom.reasons import TEXTS
from notify.channels.wecom.form import WeComForm
from notify.channels.wecom.transport import WeComTransport

KIND = Kind(transport=WeComTransport, form=WeComForm, path="wecom", mentions=True, reasons=TEXTS)
