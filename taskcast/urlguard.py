"""Callback URL checks against SSRF: pure decisions over a URL and the addresses it resolves to.

The same address rules guard both moments: when a task is created (every resolved address must be
public) and at every delivery, where the webhook session checks the address it actually connects to
(see ``taskcast.webhooks.delivery``). The extra ranges come from requests-hardened so both layers agree.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
HostLookup = Callable[[str, int], Iterable[str]]

MAX_URL_LENGTH = 2048


class CallbackRefused(ValueError):
    """The callback URL may not be used; the message says why, for a 400 problem's detail."""


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in ipaddress.ip_network("64:ff9b::/96") or ip in ipaddress.ip_network("64:ff9b:1::/48"):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(ip: IPAddress, allow_loopback: bool = False) -> str | None:
    """Why ``ip`` may not be called back, or None when it is a public address (or allowed loopback)."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        # Judge the IPv4 address it carries, and never let a translated form pass as loopback.
        reason = address_refusal(embedded, allow_loopback=False)
        return f"{ip} embeds {embedded}: {reason}" if reason else f"{ip} is an IPv4-translated address"
    if ip.is_loopback:
        return None if allow_loopback else f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address (cloud metadata lives there)"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if any(ip in network for network in EXTRA_BLOCKED_NET_RANGES if network.version == ip.version):
        return f"{ip} is in a reserved or translated range"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return f"{ip} is a private or reserved address"
    return None


def system_lookup(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def check_callback_url(
    url: str,
    *,
    allow_loopback: bool = False,
    resolve: HostLookup = system_lookup,
) -> str:
    """Return ``url`` if it may be used as a callback; raise ``CallbackRefused`` saying why not.

    Rules: ``https`` only (``http`` only to loopback when ``allow_loopback``), no credentials, and
    every address the host resolves to must be public (``localhost``, ``127.1``, ``2130706433``,
    ``0x7f.1`` and the like resolve to loopback and are judged as such).
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise CallbackRefused(f"callback_url must be a URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise CallbackRefused(f"callback_url is not a valid URL: {error}") from None
    if parts.scheme not in {"https", "http"}:
        raise CallbackRefused("callback_url must use https")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url must not carry credentials")
    host = parts.hostname
    if not host:
        raise CallbackRefused("callback_url has no host")
    if parts.fragment:
        raise CallbackRefused("callback_url must not have a fragment")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(address.split("%", 1)[0]) for address in resolve(host, port)]
    except (OSError, UnicodeError) as error:
        raise CallbackRefused(f"callback_url host {host!r} does not resolve ({error})") from None
    if not addresses:
        raise CallbackRefused(f"callback_url host {host!r} does not resolve")
    for ip in addresses:
        reason = address_refusal(ip, allow_loopback=allow_loopback)
        if reason:
            raise CallbackRefused(f"callback_url host {host!r} resolves to a refused address: {reason}")
    if parts.scheme == "http" and not (allow_loopback and all(ip.is_loopback for ip in addresses)):
        raise CallbackRefused("callback_url must use https (plain http is allowed only to loopback locally)")
    return url
