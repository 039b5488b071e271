"""Why a delivery to Feishu / Lark bots failed: this kind's reason codes (notify/reasons.py), joined
to the table by the registry (notify/channels/__init__.py)."""
from __future__ import annotations

from notify.reasons import N_

TEXTS = {
    "feishu_code": N_("%(explanation)s (%(service)s code %(errcode)s: %(errmsg)s)"),
    "feishu_sign": N_("Signature does not match: check the signing secret against the bot's security settings "
                      "(签名校验), and this server's clock (Feishu refuses a timestamp more than an hour off)."),
    "feishu_ip": N_("This server's IP address is not in the bot's IP allow-list: add it in the bot's security "
                    "settings."),
    "feishu_keyword": N_("None of the bot's custom keywords is in the message: put one of them in 'Keyword' in this "
                         "channel's settings."),
    "feishu_token": N_("The bot's webhook token is not valid: the bot was removed from the group or the URL is wrong. "
                       "The channel was disabled: add the bot again, paste its new webhook URL and enable it."),
    "feishu_bad_request": N_("Feishu refused this message as malformed or too large. Retrying cannot help this "
                             "message; the channel's settings are not at fault."),
    "feishu_throttled": N_("Sending too fast: Feishu allows 100 messages a minute and 5 a second per bot. Trying "
                           "again in a minute; if it happens often, send fewer events to this bot."),
}
