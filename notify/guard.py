"""The outbound guard: where deliveries may go.

A target's host is resolved once per request and the connection is made to the address that was
checked (notify.http), so a DNS answer cannot change between the check and the connection. The
same check runs when a channel is saved, on Test and on every delivery: `resolve` and `refusal`.

Which addresses may be reached comes from the guard's own table, `IPV4` and `IPV6`, written from
the IANA IPv4 and IPv6 Special-Purpose Address Registries (each entry: the network, its name and
RFC, the registry's "Globally Reachable" column, and what the guard does with it), not from
`ipaddress.is_global`, whose answer depends on the Python version (3.11 lets 192.0.0.0/24,
6to4 around a loopback address and the deprecated site-local fec0::/10 through). The most
specific entry holding an address decides. Three answers:

- PUBLIC: globally reachable; deliveries may go there.
- PRIVATE: loopback and private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, the
  local-use NAT64 prefix): only with ALLOW_PRIVATE_TARGETS (LAN integrations, local development;
  `make run` turns it on for the receiver demo).
- NEVER: link-local (169.254/16 with the cloud metadata service, fe80::/10), multicast,
  unspecified, broadcast, documentation, benchmarking, reserved and deprecated ranges, whatever
  ALLOW_PRIVATE_TARGETS says.

Addresses that carry an IPv4 address inside are judged by it too. An IPv4-mapped address
(::ffff:a.b.c.d) is exactly its IPv4 address. 6to4 (2002::/16), Teredo (2001::/32: its server, and
its client, stored inverted) and the well-known NAT64 prefix (64:ff9b::/96) are defined to carry
public IPv4 addresses only (RFC 3056, RFC 4380, RFC 6052 §3.1): one that carries any other is
refused always, ALLOW_PRIVATE_TARGETS or not. The local-use NAT64 prefix (64:ff9b:1::/48, RFC 8215)
is the operator's own translator and may carry any IPv4 address: it is PRIVATE, and NEVER when the
address it carries is. In IPv6, only 2000::/3 is allocated for global unicast: anything outside
it that no entry names (IPv4-compatible ::a.b.c.d included) is reserved, refused always.
"""
from __future__ import annotations

import functools
import ipaddress
import socket
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from notify.reasons import Reason, reason

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

PUBLIC, PRIVATE, NEVER = "public", "private", "never"
_STRICTNESS = {PUBLIC: 0, PRIVATE: 1, NEVER: 2}

# Where an IPv6 address carries an IPv4 address (`Entry.carries`).
MAPPED = "mapped"  # the last 32 bits, and the address is exactly that IPv4 address
SIX_TO_FOUR = "6to4"  # bits 16-47; public IPv4 only
TEREDO = "teredo"  # the server in bits 32-63, the client inverted in the last 32 bits; public IPv4 only
NAT64 = "nat64"  # the last 32 bits; public IPv4 only
NAT64_LOCAL = "nat64-local"  # the last 32 bits (the /96 form); any IPv4, the prefix itself is private


@dataclass(frozen=True)
class Entry:
    network: str
    name: object  # lazily translated: shown in the refusal
    rfc: str
    reachable: bool | None  # the registry's "Globally Reachable" (None: N/A there, or not in that registry)
    access: str  # PUBLIC, PRIVATE or NEVER: what the guard does
    carries: str | None = None  # how an IPv4 address is carried inside, if it is


_loopback = _l("loopback")
_private = _l("a private network")
_link_local = _l("link-local, where the cloud metadata service lives")
_documentation = _l("documentation")
_benchmarking = _l("benchmarking")
_protocol = _l("IETF protocol assignments")
_reserved = _l("reserved")
_multicast = _l("multicast")
_anycast = _l("a public anycast service")
_as112 = _l("AS112 DNS service")

IPV4: tuple[Entry, ...] = (
    Entry("0.0.0.0/8", _l("“this network”"), "RFC 791", False, NEVER),
    Entry("0.0.0.0/32", _l("the unspecified address"), "RFC 1122", False, NEVER),
    Entry("10.0.0.0/8", _private, "RFC 1918", False, PRIVATE),
    Entry("100.64.0.0/10", _l("carrier-grade NAT shared address space"), "RFC 6598", False, PRIVATE),
    Entry("127.0.0.0/8", _loopback, "RFC 1122", False, PRIVATE),
    Entry("169.254.0.0/16", _link_local, "RFC 3927", False, NEVER),
    Entry("172.16.0.0/12", _private, "RFC 1918", False, PRIVATE),
    Entry("192.0.0.0/24", _protocol, "RFC 6890", False, NEVER),
    Entry("192.0.0.0/29", _l("the DS-Lite IPv4 service continuity prefix"), "RFC 7335", False, NEVER),
    Entry("192.0.0.8/32", _l("the IPv4 dummy address"), "RFC 7600", False, NEVER),
    Entry("192.0.0.9/32", _anycast, "RFC 7723", True, PUBLIC),  # Port Control Protocol anycast
    Entry("192.0.0.10/32", _anycast, "RFC 8155", True, PUBLIC),  # TURN anycast
    Entry("192.0.0.170/31", _l("NAT64/DNS64 discovery"), "RFC 8880", False, NEVER),  # .170 and .171
    Entry("192.0.2.0/24", _documentation, "RFC 5737", False, NEVER),
    Entry("192.31.196.0/24", _as112, "RFC 7535", True, PUBLIC),
    Entry("192.52.193.0/24", _l("automatic multicast tunnelling"), "RFC 7450", True, PUBLIC),
    Entry("192.88.99.0/24", _l("deprecated 6to4 relay anycast"), "RFC 7526", None, NEVER),
    Entry("192.88.99.2/32", _anycast, "RFC 6751", True, PUBLIC),  # 6a44 relay anycast, still assigned
    Entry("192.168.0.0/16", _private, "RFC 1918", False, PRIVATE),
    Entry("192.175.48.0/24", _as112, "RFC 7534", True, PUBLIC),
    Entry("198.18.0.0/15", _benchmarking, "RFC 2544", False, NEVER),
    Entry("198.51.100.0/24", _documentation, "RFC 5737", False, NEVER),
    Entry("203.0.113.0/24", _documentation, "RFC 5737", False, NEVER),
    # Not in the special-purpose registry: the IPv4 address space registry's multicast block.
    Entry("224.0.0.0/4", _multicast, "RFC 5771", None, NEVER),
    Entry("240.0.0.0/4", _reserved, "RFC 1112", False, NEVER),
    Entry("255.255.255.255/32", _l("the limited broadcast address"), "RFC 919", False, NEVER),
)

IPV6: tuple[Entry, ...] = (
    # The IPv6 address space registry: only 2000::/3 is global unicast, the rest is reserved by
    # the IETF or named below.
    Entry("::/0", _reserved, "RFC 4291", None, NEVER),
    Entry("2000::/3", _l("global unicast"), "RFC 4291", True, PUBLIC),
    Entry("::/96", _l("deprecated IPv4-compatible"), "RFC 4291", None, NEVER),
    Entry("::/128", _l("the unspecified address"), "RFC 4291", False, NEVER),
    Entry("::1/128", _loopback, "RFC 4291", False, PRIVATE),
    Entry("::ffff:0:0/96", _l("IPv4-mapped"), "RFC 4291", False, PUBLIC, MAPPED),
    Entry("64:ff9b::/96", _l("NAT64"), "RFC 6052", True, PUBLIC, NAT64),
    Entry("64:ff9b:1::/48", _l("local-use NAT64"), "RFC 8215", False, PRIVATE, NAT64_LOCAL),
    Entry("100::/64", _l("discard-only"), "RFC 6666", False, NEVER),
    Entry("100:0:0:1::/64", _l("the dummy IPv6 prefix"), "RFC 9780", False, NEVER),
    Entry("2001::/23", _protocol, "RFC 2928", False, NEVER),
    Entry("2001::/32", _l("Teredo"), "RFC 4380", None, PUBLIC, TEREDO),
    Entry("2001:1::1/128", _anycast, "RFC 7723", True, PUBLIC),  # Port Control Protocol anycast
    Entry("2001:1::2/128", _anycast, "RFC 8155", True, PUBLIC),  # TURN anycast
    Entry("2001:1::3/128", _anycast, "RFC 9665", True, PUBLIC),  # DNS-SD service registration anycast
    Entry("2001:2::/48", _benchmarking, "RFC 5180", False, NEVER),
    Entry("2001:3::/32", _l("automatic multicast tunnelling"), "RFC 7450", True, PUBLIC),
    Entry("2001:4:112::/48", _as112, "RFC 7535", True, PUBLIC),
    Entry("2001:10::/28", _l("deprecated ORCHID"), "RFC 4843", None, NEVER),
    Entry("2001:20::/28", _l("ORCHIDv2"), "RFC 7343", True, PUBLIC),
    Entry("2001:30::/28", _l("drone remote ID entity tags"), "RFC 9374", True, PUBLIC),
    Entry("2001:db8::/32", _documentation, "RFC 3849", False, NEVER),
    Entry("2002::/16", _l("6to4"), "RFC 3056", None, PUBLIC, SIX_TO_FOUR),
    Entry("2620:4f:8000::/48", _as112, "RFC 7534", True, PUBLIC),
    Entry("3fff::/20", _documentation, "RFC 9637", False, NEVER),
    Entry("5f00::/16", _l("segment routing (SRv6) identifiers"), "RFC 9602", False, NEVER),
    Entry("fc00::/7", _l("a unique local network"), "RFC 4193", False, PRIVATE),
    Entry("fe80::/10", _link_local, "RFC 4291", False, NEVER),
    # Not in the special-purpose registry: the address space registry's deprecated site-local
    # block (RFC 1918's old IPv6 twin, unused since 2004) and multicast.
    Entry("fec0::/10", _l("deprecated site-local"), "RFC 3879", None, NEVER),
    Entry("ff00::/8", _multicast, "RFC 4291", None, NEVER),
)


def _ranges(entries: tuple[Entry, ...]) -> tuple[tuple[int, int, Entry], ...]:
    """(first, last, entry) as integers, most specific first: the first range holding an address
    is its entry."""
    found = []
    for entry in entries:
        network = ipaddress.ip_network(entry.network)
        found.append((network.prefixlen, int(network.network_address), int(network.broadcast_address), entry))
    found.sort(key=lambda item: -item[0])
    return tuple((first, last, entry) for _, first, last, entry in found)


_RANGES = {4: _ranges(IPV4), 6: _ranges(IPV6)}
_PUBLIC_V4 = Entry("0.0.0.0/0", _l("public"), "", True, PUBLIC)


def entry_for(ip: Address) -> Entry:
    """The most specific table entry holding `ip` (an IPv4 address in none is public)."""
    value = int(ip)
    for first, last, entry in _RANGES[ip.version]:
        if first <= value <= last:
            return entry
    return _PUBLIC_V4


@dataclass(frozen=True)
class Verdict:
    access: str  # PUBLIC, PRIVATE or NEVER
    entry: Entry  # the address's own entry
    carried: tuple[tuple[ipaddress.IPv4Address, Entry], ...] = ()  # the IPv4 addresses inside, if any

    @property
    def decisive(self) -> tuple[ipaddress.IPv4Address, Entry] | None:
        """The carried address that makes the verdict stricter than the entry's own, if one does."""
        for address, entry in self.carried:
            if entry.access != PUBLIC:
                return address, entry
        return None


def _carried(ip: ipaddress.IPv6Address, how: str) -> tuple[ipaddress.IPv4Address, ...]:
    value = int(ip)
    if how == SIX_TO_FOUR:
        return (ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF),)
    if how == TEREDO:
        return (ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF),
                ipaddress.IPv4Address(~value & 0xFFFFFFFF))
    return (ipaddress.IPv4Address(value & 0xFFFFFFFF),)


@functools.lru_cache(maxsize=4096)
def classify(ip: Address) -> Verdict:
    """What the guard makes of one address. Pure and cached: it runs on every delivery."""
    entry = entry_for(ip)
    if entry.carries is None:
        return Verdict(entry.access, entry)
    carried = tuple((inner, entry_for(inner)) for inner in _carried(ip, entry.carries))
    inner = max((e.access for _, e in carried), key=_STRICTNESS.get)
    if entry.carries == MAPPED:
        access = inner
    elif entry.carries == NAT64_LOCAL:
        access = max(entry.access, inner, key=_STRICTNESS.get)
    else:  # 6to4, Teredo, NAT64: defined for public IPv4 addresses only
        access = NEVER if inner != PUBLIC else entry.access
    return Verdict(access, entry, carried)


_BY_NETWORK = {entry.network: entry for entry in (*IPV4, *IPV6, _PUBLIC_V4)}


def entry_by_network(network: str) -> Entry | None:
    """The table's entry for `network` as written there ("127.0.0.0/8"): how a stored reason names
    an address's kind, put into words when it is shown (notify.reasons)."""
    return _BY_NETWORK.get(network)


def _what(verdict: Verdict) -> Reason:
    """The address's kind, e.g. "loopback (RFC 1122)", or "6to4 (RFC 3056) carrying 127.0.0.1:
    loopback (RFC 1122)"."""
    own = reason("address_kind", name=reason("address_range", network=verdict.entry.network), rfc=verdict.entry.rfc)
    decisive = verdict.decisive
    if decisive is None:
        return own
    address, entry = decisive
    return reason("address_carrying", outer=own, ip=str(address), name=reason("address_range", network=entry.network),
                  rfc=entry.rfc)


def refusal(host: str, ip: Address, allow_private: bool) -> Reason | None:
    """Why `ip` (what `host` resolves to) may not be reached, or None. A reason (notify.reasons):
    `str()` puts it into words in the current language."""
    verdict = classify(ip)
    if verdict.access == PUBLIC or (verdict.access == PRIVATE and allow_private):
        return None
    # "localhost is 127.0.0.1", but not "127.0.0.1 is 127.0.0.1".
    subject = host if host.strip("[]") in (str(ip), ip.compressed) else reason("host_is_ip", host=host, ip=str(ip))
    return reason("guard_never" if verdict.access == NEVER else "guard_private", subject=subject, what=_what(verdict))


@dataclass(frozen=True)
class Resolved:
    address: str | None  # the checked address to connect to
    problem: Reason | None = None  # why the host may not be reached (refused or not resolvable)
    refused: bool = False  # True: the guard said no (not a lookup failure)


def resolve(host: str, port: int, allow_private: bool) -> Resolved:
    """Resolve `host` and check every address it has; the first one is the one to use."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        addresses = [literal]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return Resolved(None, reason("dns_failed", host=host))
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
    return str(result.problem) if result.refused else None
