"""The sandbox CA (kept in the state dir so a person trusts it once) and the server certificate."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import trustme

CA_CERT_NAME = "sandbox-ca.pem"
CA_KEY_NAME = "sandbox-ca-key.pem"
# Short-lived leaf, re-issued on every start: some platforms refuse long-lived server
# certificates even from a locally trusted root.
SERVER_CERT_DAYS = 90


def certs_dir(state_dir: Path) -> Path:
    return state_dir / "certs"


def load_or_create_ca(state_dir: Path) -> tuple[trustme.CA, Path]:
    """The persisted CA and its PEM path; made on first use."""
    folder = certs_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / CA_CERT_NAME, folder / CA_KEY_NAME
    # A lock, so two sandboxes started at once on one state dir never write mismatched halves.
    with state_lock(folder):
        if cert_path.exists() and key_path.exists():
            return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes()), cert_path
        ca = trustme.CA(organization_name="EVC Connector local sandbox")
        write_private(key_path, ca.private_key_pem.bytes())
        cert_path.write_bytes(ca.cert_pem.bytes())
        return ca, cert_path


@contextlib.contextmanager
def state_lock(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def self_signed(key, common_name: str, days: int):
    """A self-signed X.509 certificate for ``key`` (RSA or EC), valid from yesterday for ``days``:
    what the sandbox's parties present of their own keys (Entra's signing key, the interface
    engine's). The app's https certificates come from the CA instead (``_leaf``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )


def _leaf(ca: trustme.CA, names: tuple[str, ...]) -> trustme.LeafCert:
    now = dt.datetime.now(dt.UTC)
    return ca.issue_cert(
        *names,
        organization_name="EVC Connector local sandbox",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=SERVER_CERT_DAYS),
    )


def issue_server_files(ca_file: Path, names: tuple[str, ...], folder: Path) -> tuple[Path, Path]:
    """A fresh leaf for ``names`` from the CA whose certificate is ``ca_file`` (its key lies
    beside it), written as ``server-cert.pem`` / ``server-key.pem`` into ``folder``: for a
    server outside the sandbox's process, such as the app on the local host."""
    with state_lock(ca_file.parent):
        ca = trustme.CA.from_pem(ca_file.read_bytes(), (ca_file.parent / CA_KEY_NAME).read_bytes())
    leaf = _leaf(ca, names)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "server-cert.pem", folder / "server-key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    write_private(key, leaf.private_key_pem.bytes())
    return cert, key


def server_ssl_context(ca: trustme.CA, names: tuple[str, ...]) -> ssl.SSLContext:
    """A TLS server context with a fresh leaf whose SAN lists ``names`` (one origin's address:
    a browser or client reaching another party's address with it fails the TLS check)."""
    leaf = _leaf(ca, names)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    leaf.configure_cert(ctx)
    return ctx
