"""The WeCom robot settings form: the shared robot fields, with user ids to mention."""
from __future__ import annotations

from notify.channels.robot_form import RobotForm, mention_fields
from notify.channels.wecom.transport import WeComTransport


class WeComForm(RobotForm):
    transport = WeComTransport


mention_fields(WeComForm, WeComTransport.mention_kinds)
