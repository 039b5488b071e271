"""Feishu / Lark custom bot (飞书自定义机器人), CHANNELS.md section 3b. Its message digests
(`prepare_digest`, as the other robots get) are not written yet."""
from __future__ import annotations

from notify.channels.base import Kind
from notify.channels.feishu.reasons import TEXTS
from notify.channels.feishu.form import FeishuForm
from notify.channels.feishu.transport import FeishuTransport

KIND = Kind(transport=FeishuTransport, form=FeishuForm, path="feishu", mentions=True, reasons=TEXTS)
