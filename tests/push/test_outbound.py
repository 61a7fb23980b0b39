"""The outbound SSRF guard: URL checks, forbidden addresses, and the guarded aiohttp session."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fakes.server import FakeServer
from push import outbound
from push.outbound import (
    AddressRefused,
    GuardedResolver,
    OutboundPolicy,
    OutboundRefused,
    guarded_session,
    is_forbidden_address,
)

NO_ALLOWLIST = OutboundPolicy("")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/push", "loopback"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://[::1]/", "loopback"),
        ("https://[::]/", "unspecified"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://[::ffff:a9fe:a9fe]/", "link-local"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://100.64.0.1/", "carrier-grade NAT"),
        ("https://10.1.2.3/", "private"),
        ("https://172.16.0.1/", "private"),
        ("https://192.168.1.1/", "private"),
        ("https://[fd00::1]/", "unique local"),
        ("https://[fe80::1%25eth0]/", "link-local"),
        ("https://[64:ff9b::7f00:1]/", "loopback"),
        ("https://[64:ff9b:1::a00:1]/", "NAT64"),
        ("https://[2002:7f00:1::1]/", "loopback"),
        ("https://[::127.0.0.1]/", "IPv4-compatible"),
        ("https://224.0.0.1/", "multicast"),
        ("https://[ff02::1]/", "multicast"),
        ("https://255.255.255.255/", "broadcast"),
        ("https://240.0.0.1/", "reserved"),
        ("https://198.18.0.1/", "benchmarking"),
        ("https://192.0.2.1/", "documentation"),
        ("https://[2001:db8::1]/", "documentation"),
        ("https://2130706433/", "loopback"),
        ("https://0177.0.0.1/", "loopback"),
        ("https://0x7f.1/", "loopback"),
        ("https://127.1/", "loopback"),
        ("https://127.0.0.1./", "loopback"),
        ("https://08.0.0.1/", "malformed IPv4"),
        ("https://localhost/", "loopback name"),
        ("https://LocalHost./", "loopback name"),
        ("https://api.localhost/", "loopback name"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://example.com:70/_GET", "scheme 'gopher'"),
        ("ftp://example.com/", "scheme 'ftp'"),
        ("//example.com/", "scheme"),
        ("http://example.com/hook", "plain http"),
        ("https://user:secret@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("https://@example.com/", "credentials"),
        ("https:///nohost", "no host"),
        ("", "empty"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\n", "control"),
        ("https://127.0.0.1\\@example.com/", "malformed"),
    ],
)
def test_check_url_refuses_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(OutboundRefused, match=reason) as caught:
        NO_ALLOWLIST.check_url(url, resolve=False)
    assert isinstance(caught.value, ValueError)
    assert caught.value.reason


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "0.0.0.0",
        "10.0.0.1",
        "100.127.255.254",
        "169.254.169.254",
        "192.0.0.8",
        "239.255.255.250",
        "::",
        "::1",
        "fc00::1",
        "fe80::1",
        "fe80::1%eth0",
        "fec0::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::a00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2002:a9fe:a9fe::1",
        "2002:c0a8:101::",
        "2001::1",  # Teredo
        "100::1",
    ],
)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_address(address)
    assert is_forbidden_address(ipaddress.ip_address(address.split("%")[0]))


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "142.250.74.106", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_are_not_forbidden(address: str) -> None:
    assert not is_forbidden_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/push/abc",
        "https://[2606:4700:4700::1111]:8443/push",
        "https://fcm.googleapis.com/fcm/send/abc",
        "HTTPS://Updates.Push.Services.Mozilla.com/wpush/v2/abc",
    ],
)
def test_check_url_accepts_public_https_without_resolving(url: str) -> None:
    NO_ALLOWLIST.check_url(url, resolve=False)


def test_verdicts_without_dns_are_remembered_per_origin_and_never_widened(monkeypatch) -> None:
    parsed: list[str] = []
    parse = outbound._parse_url
    monkeypatch.setattr(outbound, "_parse_url", lambda url: parsed.append(url) or parse(url))
    policy = OutboundPolicy("")
    policy.check_url("https://push.example.com/a", resolve=False)
    policy.check_url("https://push.example.com/b?c#d", resolve=False)
    assert parsed == ["https://push.example.com/a"]  # the second is the same origin
    for url in (
        "https://push.example.com/a b",
        "https://push.example.com/\n",
        "https://x@push.example.com/",
        "http://push.example.com/",
        "https://push.example.com@127.0.0.1/",
        "https://push.example.com.127.0.0.1.nip.io:0x7f/",
    ):
        with pytest.raises(OutboundRefused):
            policy.check_url(url, resolve=False)
    for _ in range(2):
        with pytest.raises(OutboundRefused, match="loopback"):
            policy.check_url("https://127.0.0.1/x", resolve=False)


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    asked: list[str] = []

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(outbound.socket, "getaddrinfo", getaddrinfo)
    return asked


def test_resolving_refuses_a_name_with_any_forbidden_address(monkeypatch) -> None:
    asked = _fake_dns(
        monkeypatch,
        {"push.example": ["93.184.216.34", "127.0.0.1"], "ok.example": ["93.184.216.34"]},
    )
    NO_ALLOWLIST.check_url("https://push.example/x", resolve=False)  # no lookup without resolve
    assert asked == []
    with pytest.raises(AddressRefused, match="push.example resolves to a forbidden address"):
        NO_ALLOWLIST.check_url("https://push.example/x", resolve=True)
    NO_ALLOWLIST.check_url("https://ok.example/x", resolve=True)
    with pytest.raises(OutboundRefused, match="does not resolve"):
        NO_ALLOWLIST.check_url("https://missing.example/x", resolve=True)


def test_allowlisting_by_name_is_case_insensitive_and_opens_http(monkeypatch) -> None:
    _fake_dns(monkeypatch, {"push.local": ["127.0.0.1"]})
    policy = OutboundPolicy("Push.Local, other.test")
    policy.check_url("http://push.local:8080/x", resolve=True)
    policy.check_url("https://PUSH.LOCAL./x", resolve=True)
    with pytest.raises(OutboundRefused, match="plain http"):
        policy.check_url("http://push.local.evil.com/x", resolve=False)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8090/push", "http://2130706433:8090/", "https://127.1/"]
)
def test_allowlisting_by_address_covers_every_spelling_of_it(url) -> None:
    policy = OutboundPolicy(["127.0.0.1"])
    policy.check_url(url, resolve=True)
    with pytest.raises(OutboundRefused, match="loopback"):
        policy.check_url("https://127.0.0.2/", resolve=False)
    with pytest.raises(OutboundRefused, match="loopback name"):
        policy.check_url("https://localhost/", resolve=False)  # names are allowlisted by name


def test_allowlisting_by_cidr_covers_literals_and_resolved_addresses(monkeypatch) -> None:
    _fake_dns(monkeypatch, {"internal.example": ["10.9.8.7"], "db.example": ["192.168.0.5"]})
    policy = OutboundPolicy("10.0.0.0/8,fd00::/8")
    policy.check_url("https://10.2.3.4/", resolve=False)
    policy.check_url("https://[fd00::1]/", resolve=False)
    policy.check_url("https://internal.example/", resolve=True)
    with pytest.raises(OutboundRefused, match="private"):
        policy.check_url("https://192.168.0.1/", resolve=False)
    with pytest.raises(AddressRefused, match="192.168.0.5"):
        policy.check_url("https://db.example/", resolve=True)


def test_a_bad_allowlist_entry_names_the_setting() -> None:
    with pytest.raises(ValueError, match="OUTBOUND_ALLOWED_HOSTS: 'http://x/'"):
        OutboundPolicy("127.0.0.1, http://x/")


def test_policy_from_settings_reads_outbound_allowed_hosts(settings) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = "127.0.0.1"
    OutboundPolicy.from_settings().check_url("http://127.0.0.1:9/", resolve=False)
    settings.OUTBOUND_ALLOWED_HOSTS = ""
    with pytest.raises(OutboundRefused):
        OutboundPolicy.from_settings().check_url("http://127.0.0.1:9/", resolve=False)


# -- the guarded session -----------------------------------------------------------------


@pytest.fixture(scope="module")
def counting_server():
    hits: list[str] = []

    def make_app() -> web.Application:
        async def ok(request: web.Request) -> web.Response:
            hits.append(request.path)
            return web.Response(text="ok")

        async def bounce(request: web.Request) -> web.Response:
            hits.append(request.path)
            raise web.HTTPFound("https://169.254.169.254/latest/meta-data/")

        app = web.Application()
        app.router.add_get("/bounce", bounce)
        app.router.add_get("/{tail:.*}", ok)
        return app

    server = FakeServer(make_app)
    server.start()
    yield server, hits
    server.stop()


async def _get(policy: OutboundPolicy, url: str, **kwargs: object) -> int:
    async with guarded_session(policy, timeout=5) as session:
        async with session.get(url, allow_redirects=False, **kwargs) as response:
            return response.status


@pytest.mark.parametrize(
    "path_host",
    ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]"],
)
def test_guarded_session_never_reaches_loopback_unless_allowed(counting_server, path_host) -> None:
    server, hits = counting_server
    hits.clear()
    port = server.url.rsplit(":", 1)[1]
    for scheme in ("http", "https"):
        with pytest.raises((OutboundRefused, aiohttp.ClientError)):
            asyncio.run(_get(NO_ALLOWLIST, f"{scheme}://{path_host}:{port}/x"))
    assert hits == []
    assert asyncio.run(_get(OutboundPolicy("127.0.0.1"), f"{server.url}/x")) == 200
    assert hits == ["/x"]


def test_guarded_session_checks_redirect_hops_even_when_followed(counting_server) -> None:
    server, hits = counting_server
    hits.clear()
    with pytest.raises(OutboundRefused, match="link-local"):
        asyncio.run(_follow(OutboundPolicy("127.0.0.1"), f"{server.url}/bounce"))
    assert hits == ["/bounce"]


async def _follow(policy: OutboundPolicy, url: str) -> int:
    async with guarded_session(policy, timeout=5) as session:
        async with session.get(url, allow_redirects=True) as response:
            return response.status


class RebindingDNS(AbstractResolver):
    """A DNS that answers loopback for a public-looking name, as a rebinding attacker would."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        pass


async def _rebinding_attempt(policy: OutboundPolicy) -> tuple[BaseException | None, int]:
    connections = 0

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    error: BaseException | None = None
    session = guarded_session(policy, timeout=2, resolver=RebindingDNS())
    try:
        # The URL passes check_url (a public-looking name); only the resolver can stop it.
        policy.check_url(f"https://push.example:{port}/x", resolve=False)
        async with session.get(f"https://push.example:{port}/x", allow_redirects=False):
            pass
    except aiohttp.ClientError as exc:
        error = exc
    finally:
        await session.close()
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()
    return error, connections


def test_guarded_resolver_defeats_dns_rebinding_at_connect_time() -> None:
    error, connections = asyncio.run(_rebinding_attempt(NO_ALLOWLIST))
    assert isinstance(error, aiohttp.ClientConnectorError)
    assert isinstance(error.os_error, AddressRefused)
    assert "127.0.0.1" in error.os_error.reason
    assert connections == 0
    # With the address allowlisted the same name does connect (the TLS handshake then fails).
    _, connections = asyncio.run(_rebinding_attempt(OutboundPolicy("127.0.0.0/8")))
    assert connections == 1


def test_guarded_resolver_refuses_when_any_address_is_forbidden() -> None:
    class Mixed(RebindingDNS):
        async def resolve(self, host, port=0, family=socket.AF_INET):  # noqa: ANN001, ANN202
            loopback = await super().resolve(host, port, family)
            return [dict(loopback[0], host="93.184.216.34"), *loopback]

    async def attempt() -> None:
        await GuardedResolver(NO_ALLOWLIST, Mixed()).resolve("push.example", 443)

    with pytest.raises(AddressRefused):
        asyncio.run(attempt())


# -- certificates --------------------------------------------------------------------------


def _tls_files(tmp_path) -> tuple[str, ssl.SSLContext]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Keymaster test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    return str(ca_file), server_context


async def _https_get(server_context: ssl.SSLContext) -> int | BaseException:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await _get(OutboundPolicy("127.0.0.1"), f"https://127.0.0.1:{port}/")
    except aiohttp.ClientError as exc:
        return exc
    finally:
        await runner.cleanup()


def test_guarded_session_verifies_certificates_and_honours_ssl_cert_file(
    tmp_path, monkeypatch
) -> None:
    ca_file, server_context = _tls_files(tmp_path)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert isinstance(
        asyncio.run(_https_get(server_context)), aiohttp.ClientConnectorCertificateError
    )
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    assert asyncio.run(_https_get(server_context)) == 200


def test_guarded_session_ignores_environment_proxies(monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.1:3128")

    async def trust_env() -> bool:
        async with guarded_session(NO_ALLOWLIST, timeout=1) as session:
            return session.trust_env

    assert asyncio.run(trust_env()) is False


def test_unresolvable_name_is_refused_unless_allowed_to_be_missing():
    policy = OutboundPolicy("")
    url = "https://hooks.keymaster-test.invalid/x"
    with pytest.raises(OutboundRefused, match="does not resolve"):
        policy.check_url(url, resolve=True)
    policy.check_url(url, resolve=True, unresolvable_ok=True)
    with pytest.raises(OutboundRefused, match="loopback"):
        policy.check_url("https://localhost/x", resolve=True, unresolvable_ok=True)
