"""Each sandbox party on its own origin: own loopback address, port and certificate SAN."""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import pytest

from dev.sandbox.origins import CONTROL, PLACES


def test_every_party_has_its_own_address_and_port(sandbox):
    hosts = {name: urlsplit(url) for name, url in sandbox.origins.items()}
    assert set(hosts) == {CONTROL, *sandbox.stand_ins}
    assert len({u.hostname for u in hosts.values()}) == len(hosts)  # cookies are per host
    assert len({u.port for u in hosts.values()}) == len(hosts)
    for name, url in hosts.items():
        assert url.hostname == PLACES[name].address and url.scheme == "https"
        if name != CONTROL:
            assert sandbox.stand_ins[name].origin == sandbox.origins[name]


@pytest.mark.parametrize("name", ["epic", "cerner", "entra", "graph", "acs"])
def test_each_certificate_names_only_its_own_address(sandbox, name):
    url = urlsplit(sandbox.origins[name])
    ctx = ssl.create_default_context(cafile=str(sandbox.ca_file))
    with (
        socket.create_connection((url.hostname, url.port), 5) as raw,
        ctx.wrap_socket(raw, server_hostname=url.hostname) as tls,
    ):
        sans = {v for _, v in tls.getpeercert()["subjectAltName"]}
    assert sans == {url.hostname}
    other = PLACES["graph" if name != "graph" else "epic"].address
    with (
        socket.create_connection((url.hostname, url.port), 5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname=other)


def test_index_page_lists_every_origin(sandbox, sandbox_http):
    page = sandbox_http.get(f"{sandbox.url}/").text
    for name, origin in sandbox.origins.items():
        if name != CONTROL:
            assert origin in page, name


def test_a_party_path_on_another_origin_names_where_it_lives(sandbox, sandbox_http):
    wrong = sandbox_http.get(f"{sandbox.origins['epic']}/graph/v1.0/users")
    assert wrong.status_code == 404
    assert sandbox.origins["graph"] in wrong.json()["message"]
    assert sandbox_http.get(f"{sandbox.url}/epic/schedule").status_code == 404
    # Controls answer on the control origin and on each party's.
    for origin in (sandbox.url, sandbox.origins["epic"]):
        assert sandbox_http.get(f"{origin}/_sandbox/health").json()["ok"] is True
