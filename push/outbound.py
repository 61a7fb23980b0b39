"""Refuse outbound requests to internal addresses (SSRF guard for push endpoints and webhooks).

Push subscription endpoints and webhook URLs are chosen by clients, so every request Keymaster
makes to them must be kept away from loopback, private networks, cloud metadata services and
the like. Two layers do it:

* `OutboundPolicy.check_url` validates a URL up front (scheme, userinfo, literal addresses in
  every spelling the OS accepts, and optionally the addresses the name resolves to);
* `guarded_session` builds an aiohttp session whose resolver refuses forbidden addresses at
  connect time, which is what defeats DNS rebinding between the check and the connection.

`OUTBOUND_ALLOWED_HOSTS` (host names, addresses or CIDRs, comma-separated) opens holes for
local testing only. Redirects are never followed: callers pass ``allow_redirects=False`` and
treat a 3xx as an outcome, because a redirect would be a second, unchecked request.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Explicit tables rather than `ipaddress.is_global` alone: its definition changed between
# Python patch releases, and it calls multicast "global". Sources: the IANA special-purpose
# registries (https://www.iana.org/assignments/iana-ipv4-special-registry,
# https://www.iana.org/assignments/iana-ipv6-special-registry).
_FORBIDDEN_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_FORBIDDEN_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible"),  # deprecated (RFC 4291 2.5.5.1): never a real peer
        ("64:ff9b:1::/48", "local-use NAT64"),  # RFC 8215
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments"),  # includes Teredo and benchmarking
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix

# The numeric spellings inet_aton accepts (decimal, octal, hex, 1 to 4 parts). Matched first
# because inet_aton itself ignores anything after a space ("127.0.0.1 x" parses).
_INET_ATON_FORM = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
# The scheme and authority of a URL, as `_parse_url` splits them: all a check without DNS sees.
_ORIGIN = re.compile(r"[^:/?#]*://[^/?#]*")
_VERDICTS_KEPT = 4096


class OutboundRefused(ValueError):
    """An outbound URL or address is not allowed; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AddressRefused(OutboundRefused, OSError):
    """A resolved address is forbidden (an OSError so aiohttp reports it as a connect error)."""


def forbidden_reason(ip: IPAddress | str) -> str | None:
    """Return why an address must not be contacted, or None when it is a public address."""
    address = ip if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address) else None
    if address is None:
        address = ipaddress.ip_address(str(ip).split("%", 1)[0])
    if isinstance(address, ipaddress.IPv4Address):
        return _v4_reason(address)
    if address.scope_id:
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
    # IPv6 spellings that the kernel or a gateway turns into an IPv4 connection.
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is None and address in _NAT64:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if embedded is not None:
        inner = _v4_reason(embedded)
        return f"{inner} (embedded in IPv6)" if inner else None
    for network, why in _FORBIDDEN_V6:
        if address in network:
            return why
    return None if address.is_global else "not globally routable"


def _v4_reason(address: ipaddress.IPv4Address) -> str | None:
    for network, why in _FORBIDDEN_V4:
        if address in network:
            return why
    return None if address.is_global else "not globally routable"


def is_forbidden_address(ip: IPAddress | str) -> bool:
    """Return True when an address is internal, reserved or otherwise not a public peer."""
    return forbidden_reason(ip) is not None


def parse_ip_literal(host: str) -> IPAddress | None:
    """Parse a URL host as an IP address in any spelling the OS accepts; None for a name."""
    host = host.strip("[]").rstrip(".")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])  # drop the zone id
        except ValueError:
            raise OutboundRefused(f"malformed IPv6 address {host!r}") from None
    if not _INET_ATON_FORM.fullmatch(host):
        return None
    try:
        # inet_aton is what getaddrinfo uses for numeric hosts: 2130706433, 0177.0.0.1,
        # 0x7f.1 and 127.1 all mean 127.0.0.1 to the resolver, so they must mean it here.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        raise OutboundRefused(f"malformed IPv4 address {host!r}") from None


class OutboundPolicy:
    """Which outbound URLs Keymaster may contact: public https, plus an explicit allowlist."""

    def __init__(self, allowed: str | Iterable[str] = ()) -> None:
        entries = allowed.split(",") if isinstance(allowed, str) else allowed
        self._names: set[str] = set()
        self._networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().strip("[]").rstrip(".").lower()
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.fullmatch(entry):
                raise ValueError(
                    f"OUTBOUND_ALLOWED_HOSTS: {raw.strip()!r} is not a host name, address or CIDR"
                )
            self._names.add(entry)
        # Verdicts of checks without DNS, by origin: every delivery and receipt checks its
        # URL, and a worker sees few origins. A pure function of the text and this policy.
        self._verdicts: dict[str, str] = {}

    @classmethod
    def from_settings(cls) -> OutboundPolicy:
        """Build the policy from ``settings.OUTBOUND_ALLOWED_HOSTS`` (read at call time)."""
        from django.conf import settings

        return cls(getattr(settings, "OUTBOUND_ALLOWED_HOSTS", "") or "")

    def __repr__(self) -> str:
        allowed = sorted(self._names) + [str(n) for n in self._networks]
        return f"OutboundPolicy({','.join(allowed)!r})"

    def allows_host(self, host: str) -> bool:
        """Return True when a host name is allowlisted (case-insensitive)."""
        return host.rstrip(".").lower() in self._names

    def allows_address(self, ip: IPAddress) -> bool:
        """Return True when an address falls in an allowlisted address or CIDR."""
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        return any(ip.version == net.version and ip in net for net in self._networks)

    def check_address(self, host: str, ip: IPAddress) -> None:
        """Raise AddressRefused when `ip` (which `host` resolved to) may not be contacted."""
        why = forbidden_reason(ip)
        if why and not (self.allows_host(host) or self.allows_address(ip)):
            raise AddressRefused(f"{host} resolves to a forbidden address {ip} ({why})")

    def check_url(self, url: str, *, resolve: bool, unresolvable_ok: bool = False) -> None:
        """Raise OutboundRefused unless `url` may be requested; `resolve` also checks DNS.

        With `unresolvable_ok`, a name that does not resolve (yet) passes: configuration time
        refuses names that resolve inside, delivery time resolves again through the guard.
        """
        origin = None if resolve else _origin(url)
        if origin is not None:
            verdict = self._verdicts.get(origin)
            if verdict is None:
                verdict = self._verdict(url)
                if len(self._verdicts) >= _VERDICTS_KEPT:
                    self._verdicts.clear()
                self._verdicts[origin] = verdict
            if verdict:
                raise OutboundRefused(verdict)
            return
        self._check(url, resolve=resolve, unresolvable_ok=unresolvable_ok)

    def _verdict(self, url: str) -> str:
        try:
            self._check(url, resolve=False)
        except OutboundRefused as exc:
            return exc.reason
        return ""

    def _check(self, url: str, *, resolve: bool, unresolvable_ok: bool = False) -> None:
        parsed = _parse_url(url)
        host = parsed.raw_host or ""
        ip = parse_ip_literal(host)
        allowed = self.allows_host(host) or (ip is not None and self.allows_address(ip))
        if parsed.scheme == "http" and not allowed:
            raise OutboundRefused(f"plain http is only allowed to allowlisted hosts, not {host}")
        if allowed:
            return
        if ip is not None:
            why = forbidden_reason(ip)
            if why:
                raise OutboundRefused(f"address {ip} is {why}")
            return
        name = host.rstrip(".").lower()
        # RFC 6761: "localhost" and its subdomains are loopback whatever DNS says.
        if name == "localhost" or name.endswith(".localhost"):
            raise OutboundRefused(f"{name} is a loopback name")
        if resolve:
            for address in _resolve(host, parsed.port or 443, missing_ok=unresolvable_ok):
                self.check_address(host, address)


def _origin(url: str) -> str | None:
    # None (no shortcut) for anything `_parse_url` must look at whole.
    if not isinstance(url, str) or _CONTROL.search(url):
        return None
    match = _ORIGIN.match(url)
    return match.group(0) if match else None


def _parse_url(url: str) -> URL:
    if not isinstance(url, str) or not url:
        raise OutboundRefused("URL is empty")
    if _CONTROL.search(url):
        raise OutboundRefused("URL contains whitespace or control characters")
    try:
        # yarl is what aiohttp connects with, so the host checked is the host contacted.
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise OutboundRefused(f"URL is malformed: {exc}") from None
    scheme = (parsed.scheme or "").lower()
    if scheme not in ("https", "http"):
        raise OutboundRefused(f"scheme {scheme or '(none)'!r} is not allowed; use https")
    # Checked on the raw text too: yarl drops an empty userinfo ("https://@host/").
    authority = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in (parsed.raw_authority or "") or "@" in authority:
        raise OutboundRefused("URL must not contain credentials (user info)")
    if not parsed.raw_host:
        raise OutboundRefused("URL has no host")
    return parsed


def _resolve(host: str, port: int, *, missing_ok: bool = False) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        if missing_ok:
            return []
        raise OutboundRefused(f"{host} does not resolve ({exc})") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses names resolving to forbidden addresses."""

    def __init__(self, policy: OutboundPolicy, resolver: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._resolver = resolver if resolver is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host` and refuse the lot if ANY address is forbidden."""
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(str(result["host"]).split("%", 1)[0])
            self._policy.check_address(host, address)
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._resolver.close()


def _guard_middleware(policy: OutboundPolicy) -> ClientMiddlewareType:
    # aiohttp skips the resolver for literal IP hosts, so each request URL (including every
    # redirect hop, should a caller ever follow one) is checked here as well.
    async def guard(
        request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        policy.check_url(str(request.url), resolve=False)
        return await handler(request)

    return guard


def guarded_session(
    policy: OutboundPolicy,
    *,
    timeout: float,
    limit: int = 100,
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """Build a session that only reaches allowed addresses; call it inside the running loop.

    Callers must pass ``allow_redirects=False`` on every request: a redirect is an outcome,
    never followed. Certificates are always verified (``SSL_CERT_FILE`` adds a test CA).
    `resolver` replaces the wrapped DNS resolver (tests use it to play a rebinding DNS).
    """
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy, resolver),
        limit=limit,
        ssl=ssl.create_default_context(),
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        trust_env=False,  # never route through an environment proxy that skips the guard
        cookie_jar=aiohttp.DummyCookieJar(),
        middlewares=(_guard_middleware(policy),),
    )


_UNSAFE_IN_REASON = re.compile(r"[^A-Za-z0-9 .,:;'()_/-]+")


def answer_reason(text: object, limit: int = 120) -> str:
    """Shorten a remote answer's text to a one-line reason safe to store, show and log.

    A provider's or webhook's answer is never kept whole: an SSRF would read internal pages
    through it. Only plain characters survive, whitespace is folded, the length is capped.
    """
    reason = _UNSAFE_IN_REASON.sub(" ", str(text))
    reason = " ".join(reason.split())
    return reason if len(reason) <= limit else reason[: limit - 3].rstrip() + "..."
