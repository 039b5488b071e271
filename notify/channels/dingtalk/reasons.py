"""Why a delivery to DingTalk robots failed: this kind's reason codes (notify/reasons.py), joined
to the table by the registry (notify/channels/__init__.py)."""
from __future__ import annotations

from notify.reasons import N_

TEXTS = {
    "dingtalk_token": N_("The robot's access_token does not exist: the robot was removed or the URL is wrong. Copy "
                         "its webhook URL again from the group's robot settings."),
    "dingtalk_throttled": N_("Sending too fast: DingTalk throttles this robot for 10 minutes. Trying again after "
                             "that; if it happens often, send fewer events to this robot."),
    "dingtalk_too_long": N_("The message is too long for DingTalk, which refuses it. Retrying cannot help; choose "
                            "fewer events or a shorter keyword for this robot."),
    "dingtalk_busy": N_("DingTalk is busy; trying again later."),
    "dingtalk_sign": N_("Signature does not match: check the secret (加签, SEC…) against the robot's security "
                        "settings, and this server's clock."),
    "dingtalk_keyword": N_("The robot's security keyword is not in the message: put the keyword in 'Keyword' in "
                           "this robot's settings."),
    "dingtalk_timestamp": N_("DingTalk rejected the timestamp: this server's clock is off by more than an hour. "
                             "Set it right (NTP)."),
    "dingtalk_ip": N_("This server's IP address is not in the robot's IP allow-list: add it in the robot's "
                      "security settings."),
    "dingtalk_security": N_("DingTalk's security check failed: compare the robot's security settings (keyword, "
                            "加签, IP list) with this channel's."),
}
