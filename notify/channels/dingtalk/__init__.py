"""DingTalk custom group robot (钉钉自定义机器人)."""
from __future__ import annotations

from notify.channels.base import Kind
from notify.channels.dingtalk.reasons import TEXTS
from notify.channels.dingtalk.form import DingTalkForm
from notify.channels.dingtalk.transport import DingTalkTransport

KIND = Kind(transport=DingTalkTransport, form=DingTalkForm, path="dingtalk", mentions=True, reasons=TEXTS)
