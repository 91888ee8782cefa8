"""The SSRF guard of outbound HTTP: which addresses a call may reach, and its deadline.

- Production: only public unicast addresses (IPv4 inside IPv6 forms checked too; Azure's
  platform address refused), checked after DNS and again on the socket actually connected, so
  a DNS answer that changes in between (rebinding) is caught.
- Local mode (a developer's machine): only loopback addresses, so a local run or a fuzzed
  endpoint never talks to the network.
- Every exchange has a deadline enforced on the socket (`Deadline`).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Public by IANA, private by Azure: the platform's virtual IP (DNS, DHCP, health probes and the
# wire server with the VM's configuration) answers only inside Azure, and must never be fetched.
_PLATFORM = (ipaddress.ip_network("168.63.129.16/32"),)


class AddressNotAllowed(Exception):
    """Raised inside urllib3 when the connected peer is not a public address.

    Deliberately not an OSError: urllib3 and requests would otherwise retry it and wrap it as a
    connection error; this way it reaches `OutboundHttp` unchanged.
    """


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (what a connection could end up using)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def loopback(address: str) -> bool:
    """A loopback address (127.0.0.0/8, ::1, or IPv4 loopback inside an IPv6 form)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_loopback or any(inner.is_loopback for inner in _embedded_ipv4(ip))


def address_allowed(address: str) -> bool:
    """True only for public unicast addresses (also checks IPv4 embedded in IPv6 forms)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if not all(address_allowed(str(inner)) for inner in _embedded_ipv4(ip)):
        return False
    blocked = (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast  # 224.0.0.0/4 counts as "global" for the ipaddress module
        or ip.is_unspecified
    )
    platform = any(ip in net for net in _PLATFORM)
    return ip.is_global and not blocked and not platform


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[Any]:
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    inner: list[Any] = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo:
        inner.append(ip.teredo[1])
    if ip in _NAT64:
        inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return inner


class Deadline:
    """The whole exchange's deadline, enforced on the socket itself.

    Timeouts in requests bound each read, not the exchange: a server sending a byte every few
    seconds (headers or body) would hold the call for hours. A timer shuts the connection's
    socket down when the deadline passes, so the blocked read returns at once.
    """

    _current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        Deadline._current.value = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        Deadline._current.value = None

    @classmethod
    def watch(cls, connection: Any) -> None:
        """Called by the connection as a request starts on it, and with the new socket as it
        connects (in the caller's thread). The socket itself is kept: once a response says
        `Connection: close`, http.client hands it to the response and the connection forgets
        it, so a body trickled after that could not be cut off through the connection."""
        deadline = getattr(cls._current, "value", None)
        if deadline is not None:
            with deadline._lock:
                watched = [connection, getattr(connection, "sock", None)]
                deadline._connections.extend(w for w in watched if w is not None)
                if deadline.expired:
                    for each in watched:
                        _shut(each)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection in self._connections:
                _shut(connection)


def _shut(connection: Any) -> None:
    sock = (
        connection if isinstance(connection, socket.socket) else getattr(connection, "sock", None)
    )
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@functools.cache
def guarded_adapter_class(local_mode: bool) -> type:
    """A requests adapter whose connections refuse peers outside the mode's addresses: public
    ones in production, loopback ones in local mode (built on first use)."""
    return _adapter_class(loopback if local_mode else address_allowed)


@functools.cache
def watched_adapter_class() -> type:
    """A requests adapter whose connections only obey `Deadline` (Microsoft's fixed hosts need
    no address check, only the bound on a trickling answer)."""
    return _adapter_class(None)


def _adapter_class(allowed: Callable[[str], bool] | None) -> type:
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _CheckPeer:
        def _new_conn(self) -> socket.socket:  # runs before TLS and before any byte is sent
            sock = super()._new_conn()  # type: ignore[misc]
            peer = str(sock.getpeername()[0])
            if allowed is not None and not allowed(peer):
                sock.close()
                raise AddressNotAllowed(peer)
            Deadline.watch(sock)  # the TCP socket: shutting it ends a TLS read on it too
            return sock

        def request(self, *args: Any, **kwargs: Any) -> Any:  # every request, new or pooled
            Deadline.watch(self)
            return super().request(*args, **kwargs)  # type: ignore[misc]

    class _Http(_CheckPeer, HTTPConnection):
        pass

    class _Https(_CheckPeer, HTTPSConnection):
        pass

    class _HttpPool(HTTPConnectionPool):
        ConnectionCls = _Http

    class _HttpsPool(HTTPSConnectionPool):
        ConnectionCls = _Https

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": _HttpPool, "https": _HttpsPool}

    return GuardedAdapter
