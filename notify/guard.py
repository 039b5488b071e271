"""The outbound guard: where deliveries may go.

A target's host is resolved once per request and the connection is made to the address that was
checked (notify.http), so a DNS answer cannot change between the check and the connection.
Addresses that are not public are refused: loopback, private networks (10/8, 172.16/12,
192.168/16, fc00::/7, 100.64/10) and the like unless ALLOW_PRIVATE_TARGETS is on (LAN
integrations, local development; `make run` turns it on for the receiver demo); link-local
(169.254/16 with the cloud metadata address, fe80::/10), multicast, unspecified and reserved
addresses always. The same check runs when a channel is saved, on Test and on every delivery.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from flask_babel import gettext as _

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Resolved:
    address: str | None  # the checked address to connect to
    problem: str | None = None  # why the host may not be reached (refused or not resolvable)
    refused: bool = False  # True: the guard said no (not a lookup failure)


def never_allowed(ip: Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    # ::1 lies in IPv6's reserved ::/8, but it is loopback: allowed with private targets.
    return not ip.is_loopback and (ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved)


def is_public(ip: Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global


def refusal(host: str, ip: Address, allow_private: bool) -> str | None:
    """Why `ip` (what `host` resolves to) may not be reached, or None."""
    if never_allowed(ip):
        return _("%(host)s is %(ip)s, a link-local, multicast or reserved address: deliveries never go there "
                 "(this protects the cloud metadata service).", host=host, ip=ip)
    if not allow_private and not is_public(ip):
        return _("%(host)s is %(ip)s, a loopback or private address: deliveries go to public addresses only. "
                 "Set ALLOW_PRIVATE_TARGETS=1 to allow targets on your own network.", host=host, ip=ip)
    return None


def resolve(host: str, port: int, allow_private: bool) -> Resolved:
    """Resolve `host` and check every address it has; the first one is the one to use."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        addresses = [literal]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return Resolved(None, _("DNS lookup failed: the host name in %(host)s could not be resolved", host=host))
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for ip in addresses:
        problem = refusal(host, ip, allow_private)
        if problem:
            return Resolved(None, problem, refused=True)
    return Resolved(str(addresses[0]))


def check_on_save(host: str, port: int, allow_private: bool) -> str | None:
    """For the forms and the import: a refused address is an error; a host that does not resolve
    now is accepted (it may be an internal name, or DNS may be down), and explained at send time."""
    result = resolve(host, port, allow_private)
    return result.problem if result.refused else None
