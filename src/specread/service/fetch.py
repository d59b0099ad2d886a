"""Fetch an image from a URL a client gave us, without becoming a proxy into our own network.

A service that downloads whatever URL it is sent can be pointed at
``http://169.254.169.254/`` (cloud metadata), ``http://127.0.0.1:6379/`` or a
host on the private LAN (server-side request forgery). So every fetch here:

* accepts only ``http`` and ``https`` URLs;
* resolves the host name itself and refuses the request if *any* resolved
  address is private, loopback, link-local, multicast, reserved or otherwise
  not globally routable (unless the operator allows private addresses); IPv6
  forms that reach an IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4)
  are judged by that address, and site-local and Teredo ones are refused; then
  connects to one of the addresses it checked, so a DNS answer that changes
  between the check and the connection (DNS rebinding) cannot slip through;
* follows redirects itself, a few at most, and every hop goes through the same
  check, so a public URL cannot redirect to a private one;
* caps the bytes read (a ``Content-Length`` over the cap fails at once, a body
  that keeps streaming fails as soon as it passes the cap) and the total time.

What a fetch may do is a :class:`specread.settings.FetchPolicy` (its defaults in
``settings.toml``, ``[fetch]``; the address rules are :func:`address_allowed`,
here); what goes wrong is a
:class:`specread.errors.FetchError`, whose ``status`` and ``code`` the service answers with.

The guard sits in an :class:`httpcore.AsyncNetworkBackend`, the single place
where httpcore opens TCP connections, so no code path can connect without it.
Responses are not decompressed (``Accept-Encoding: identity``), so a small
gzip body cannot expand past the cap. Proxy environment variables are ignored.

Example:
    >>> import anyio
    >>> data = anyio.run(fetch_image, "https://example.com/label.jpg", FetchPolicy())  # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

import anyio
import httpcore
import httpx

from specread.errors import (
    BadUrlError,
    FetchError,
    FetchFailedError,
    FetchTimeoutError,
    FetchTooLargeError,
    UrlNotAllowedError,
)
from specread.settings import FetchPolicy, Resolver

__all__ = [  # the errors and the policy live in specread.errors and specread.settings; here for fetch's callers
    "BadUrlError",
    "FetchError",
    "FetchFailedError",
    "FetchPolicy",
    "FetchTimeoutError",
    "FetchTooLargeError",
    "GuardedBackend",
    "Resolver",
    "UrlNotAllowedError",
    "address_allowed",
    "fetch_image",
    "is_public_address",
    "system_resolver",
]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "specread-service/1 (+image fetch)"

_NON_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        "fec0::/10",  # site-local (deprecated, still routed on some networks)
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
        "2001::/32",  # Teredo: tunnels to an IPv4 host we cannot check
        "64:ff9b:1::/48",  # NAT64 for local use
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "100::/64",  # discard-only
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to (mapped, compatible, NAT64 /96, 6to4), or None."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or ip in _V4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address; IPv6 forms that carry an IPv4 address are judged by it."""
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _NON_PUBLIC_V6):
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
    return ip.is_global and not ip.is_multicast


def address_allowed(policy: FetchPolicy, address: str) -> bool:
    """True when connecting to ``address`` (an IP literal) is within ``policy``.

    An IPv6 address that carries an IPv4 one (IPv4-mapped or -compatible,
    NAT64, 6to4) is judged by the IPv4 address, so ``64:ff9b::7f00:1`` is
    loopback; ``policy.allowed_networks`` may match either.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    embedded = _embedded_ipv4(ip)
    forms = (ip,) if embedded is None else (ip, embedded)
    networks = [ipaddress.ip_network(net, strict=False) for net in policy.allowed_networks]
    if any(form in net for form in forms for net in networks):
        return True
    return policy.allow_private or is_public_address(ip)


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver (``getaddrinfo``), every address family."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that only connects to addresses the policy allows.

    Args:
        policy: the fetch policy.
        resolver: host name -> addresses (default: the system resolver).
        url: the URL being fetched, for error messages.
    """

    def __init__(self, policy: FetchPolicy, resolver: Resolver | None = None, url: str = "") -> None:
        self.policy = policy
        self.resolver = resolver or system_resolver
        self.url = url
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = list(dict.fromkeys(await self.resolver(host, port)))
        except (OSError, UnicodeError) as exc:
            raise FetchFailedError(self.url, f"cannot resolve host {host!r}") from exc
        if not addresses:
            raise FetchFailedError(self.url, f"host {host!r} has no address")
        refused = [a for a in addresses if not address_allowed(self.policy, a)]
        if refused:
            raise UrlNotAllowedError(
                self.url, f"host {host!r} resolves to a non-public address ({refused[0]}); private URLs are disabled"
            )
        error: Exception | None = None
        for address in addresses:  # connect to what was checked, never re-resolve
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise UrlNotAllowedError(self.url, "unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _parse(url: str, shown: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BadUrlError(shown, "not a valid URL") from exc
    if parsed.scheme not in ("http", "https"):
        raise BadUrlError(shown, "only http and https URLs are allowed")
    if not parsed.host:
        raise BadUrlError(shown, "the URL has no host")
    return parsed


async def fetch_image(
    url: str, policy: FetchPolicy, resolver: Resolver | None = None, reserve: Callable[[int], None] | None = None
) -> bytes:
    """Download the body at ``url`` under ``policy``.

    Args:
        url: an ``http`` or ``https`` URL.
        policy: what the fetch may do (addresses, size, time, redirects).
        resolver: host name resolver; the system one by default.
        reserve: called with each piece's size as it arrives, before it is kept (the service's
            byte budget, :class:`specread.service.limits.Reservation`); it raises to refuse.

    Returns:
        The response body (at most ``policy.max_bytes`` bytes).

    Raises:
        BadUrlError: not an http(s) URL with a host (also after a redirect).
        UrlNotAllowedError: the host resolves to a disallowed address (also after a redirect).
        FetchTooLargeError: the body is larger than ``policy.max_bytes``.
        FetchTimeoutError: the fetch took longer than ``policy.timeout``.
        FetchFailedError: DNS, connection, protocol or HTTP status failure.
    """
    shown = url if len(url) <= 200 else url[:200] + "..."
    current = _parse(url, shown)
    timeouts = {"connect": policy.connect_timeout, "read": policy.timeout, "write": policy.timeout, "pool": 1.0}
    backend = GuardedBackend(policy, resolver, shown)
    try:
        with anyio.fail_after(policy.timeout):
            async with httpcore.AsyncConnectionPool(network_backend=backend, retries=0, max_connections=4) as pool:
                for _ in range(policy.max_redirects + 1):
                    target = httpcore.URL(
                        scheme=current.raw_scheme, host=current.raw_host, port=current.port, target=current.raw_path
                    )
                    headers = [(b"User-Agent", _USER_AGENT.encode()), (b"Accept-Encoding", b"identity")]
                    async with pool.stream(
                        "GET", target, headers=headers, extensions={"timeout": timeouts}
                    ) as response:
                        if response.status in _REDIRECTS:
                            location = _header(response.headers, b"location")
                            if not location:
                                raise FetchFailedError(shown, f"redirect {response.status} without a Location")
                            current = _parse(str(current.join(location)), shown)
                            continue
                        if not 200 <= response.status < 300:
                            raise FetchFailedError(shown, f"the server answered HTTP {response.status}")
                        return await _read_capped(response, policy.max_bytes, shown, reserve)
                raise FetchFailedError(shown, f"more than {policy.max_redirects} redirects")
    except TimeoutError as exc:
        raise FetchTimeoutError(shown, f"no complete answer within {policy.timeout:g} s") from exc
    except httpcore.TimeoutException as exc:
        raise FetchTimeoutError(shown, "the server is too slow") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise FetchFailedError(shown, f"connection failed ({type(exc).__name__})") from exc


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return ""


async def _read_capped(
    response: httpcore.Response, max_bytes: int, shown: str, reserve: Callable[[int], None] | None
) -> bytes:
    """The body, at most ``max_bytes``, in one buffer; each piece reserved before it is kept."""
    declared = _header(response.headers, b"content-length")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchTooLargeError(shown, f"the image is {int(declared)} bytes; the limit is {max_bytes}")
    body = bytearray()
    async for chunk in response.aiter_stream():
        if len(body) + len(chunk) > max_bytes:
            raise FetchTooLargeError(shown, f"the image is larger than the limit of {max_bytes} bytes")
        if reserve is not None:
            reserve(len(chunk))
        body += chunk
    if reserve is not None:
        reserve(len(body))  # the bytes copy below, held beside the buffer for a moment (counted till the answer)
    return bytes(body)
