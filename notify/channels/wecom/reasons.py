"""Why a delivery to WeCom robots failed: this kind's reason codes (notify/reasons.py), joined
to the table by the registry (notify/channels/__init__.py)."""
from __future__ import annotations

from notify.reasons import N_

TEXTS = {
    "wecom_key": N_("The robot's webhook key is not valid: the robot was removed or the URL is wrong. Copy its "
                    "webhook URL again from the group's robot settings."),
    "wecom_msgtype": N_("WeCom does not accept this message type: check that the URL is a group robot's webhook."),
    "wecom_param": N_("WeCom rejected a parameter of the message (too long, or a bad mention): check the mobiles and "
                      "user ids to mention in this robot's settings."),
    "wecom_empty": N_("WeCom found the message empty or malformed. Retrying cannot help this message; if it "
                      "happens for every event, report it."),
    "wecom_throttled": N_("Sending too fast: WeCom allows 20 messages a minute per robot. Trying again in a "
                          "minute; if it happens often, send fewer events to this robot."),
    "wecom_busy": N_("WeCom is busy; trying again later."),
}
