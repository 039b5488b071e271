"""Why a delivery to email failed: this kind's reason codes (notify/reasons.py), joined
to the table by the registry (notify/channels/__init__.py)."""
from __future__ import annotations

from notify.reasons import N_

TEXTS = {
    "smtp_recipients": N_("The mail server refused every recipient: %(replies)s. Check the addresses; some servers "
                          "relay only to their own domains."),
    "smtp_login": N_("The mail server refused the login (%(reply)s): check the user and the authorisation code (QQ "
                     "Mail and 163 Mail need an authorisation code, not the login password)."),
    "smtp_sender": N_("The mail server refused the sender %(sender)s: check the sender address; many servers accept "
                      "only the address of the user who logs in (%(reply)s)"),
    "smtp_answer": N_("The mail server answered %(reply)s"),
    "smtp_unsupported": N_("The mail server %(server)s does not offer what these settings need (%(error)s): check "
                           "the security setting (port 465 is usually SSL, 587 STARTTLS)."),
    "smtp_refused": N_("Connection refused by %(server)s: this server cannot reach the mail server. Check the host, "
                       "the port and the firewall."),
    "smtp_timeout": N_("The mail server %(server)s did not answer within %(seconds)s s: this server cannot reach it. "
                       "Check the host, the port, and that no firewall or proxy blocks outgoing mail (many "
                       "clouds block port 25)."),
    "smtp_dns": N_("DNS lookup failed for the mail server %(server)s: this server cannot reach it. Check the host "
                   "name, and that this server has internet access and a working DNS resolver."),
    "smtp_tls": N_("TLS error talking to the mail server %(server)s: %(error)s. Check the security setting (port "
                   "465 is usually SSL, 587 STARTTLS)."),
    "smtp_closed": N_("The mail server %(server)s closed the connection. Check the port and the security setting, "
                      "and that the server accepts mail from this server's address."),
    "smtp_failed": N_("Could not talk to the mail server %(server)s: %(error)s"),
}
