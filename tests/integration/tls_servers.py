"""What the TLS test starts: a test CA and a server certificate for 127.0.0.1/localhost, a PostgreSQL of its own
that accepts TLS connections only, and a redis-server listening on a TLS port only."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import free_port


@attrs.frozen
class Pki:
    """PEM files: the CA's certificate, and the server's certificate (signed by it) and key."""

    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(directory: Path, *, label: str = "payments test") -> Pki:
    """A CA and a server certificate for `localhost` and `127.0.0.1` (what verify-full checks), valid one day."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(_name(f"{label} CA")).issuer_name(_name(f"{label} CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False),
                              critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    pki.key.chmod(0o600)
    return pki


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll `condition` until it holds (exceptions count as not yet), or fail after `timeout` s naming `what`."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as error:  # not up yet; the last one is reported
            last = error
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s (last error: {last!r})")


#: initdb and the postmaster refuse to run as root: as root, the test's server runs as this system user.
POSTGRES_USER = "postgres"


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", POSTGRES_USER, "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def tls_postgres(pki: Pki) -> Iterator[int]:
    """initdb + pg_ctl on a free 127.0.0.1 port with `ssl = on` and the test certificate; pg_hba has `hostssl`
    lines only, so a plain connection is refused. Yields the port; the server and its files go afterwards. The data
    lives outside pytest's temporary tree (another engineer's pytest may reset that to 0700 under the server's user).
    """
    root = Path(tempfile.mkdtemp(prefix="payments-tls-pg-"))
    data, port = root / "data", free_port()
    try:
        if os.geteuid() == 0:
            shutil.chown(root, POSTGRES_USER)
        subprocess.run(_as_server_user(["initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync",
                                        "--no-instructions"]), check=True, capture_output=True, timeout=120)
        for source, name in ((pki.cert, "server.crt"), (pki.key, "server.key")):
            shutil.copyfile(source, data / name)
            (data / name).chmod(0o600)
            if os.geteuid() == 0:
                shutil.chown(data / name, POSTGRES_USER)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n"
                       "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                       "fsync = off\nmax_connections = 40\nshared_buffers = 16MB\n")
        (data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 trust\n")
        subprocess.run(_as_server_user(["pg_ctl", "-D", str(data), "-l", str(root / "postgres.log"), "-w", "-t", "90",
                                        "start"]), check=True, capture_output=True, timeout=120)
        yield port
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_server_user(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           check=False, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def tls_redis(pki: Pki, directory: Path) -> Iterator[int]:
    """Debian's redis-server (built with TLS) on a free TLS port and no plain port; clients are not asked for a
    certificate. Yields the port; the server is killed afterwards."""
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not on PATH (apt-get install redis-server)"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", str(pki.cert),
         "--tls-key-file", str(pki.key), "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no",
         "--dir", str(directory), "--save", "", "--appendonly", "no"],
        stdout=(directory / "redis.log").open("ab"), stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(pki.ca), socket_timeout=2)
        wait_for(lambda: process.poll() is None and bool(client.ping()), "redis-server answering over TLS")
        client.close()
        yield port
    finally:
        process.kill()
        process.wait(30)
