"""What the TLS tests start: a test CA and a server certificate for 127.0.0.1/localhost, a PostgreSQL of its own
that accepts TLS connections only, a redis-server listening on a TLS port only, and a RabbitMQ node of its own with
a TLS listener only."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import attrs
import pika
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


#: The RabbitMQ scripts themselves: /usr/sbin's wrappers would `su` to the rabbitmq user, whose home holds the
#: machine's node's Erlang cookie. Run directly (as root or not), the node and its CLI share a cookie in the node's
#: own HOME and touch nothing of the machine's node (rabbit@localhost on 5672, which must keep running).
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def amqps_url(port: int, ca: Path, *, credentials: str, vhost: str = "%2F") -> str:
    """An `amqps://` URL verifying the server against `ca`: pika's URLParameters reads `ssl_options` as a Python
    dict literal, URL-encoded (`ca_certs`; `server_hostname` when the host differs from the certificate's name)."""
    options = quote(repr({"ca_certs": str(ca), "server_hostname": "localhost"}), safe="")
    return f"amqps://{credentials}@127.0.0.1:{port}/{vhost}?ssl_options={options}"


@attrs.frozen
class TlsRabbitmq:
    node: str  # the Erlang node name, for `rabbitmqctl -n`
    port: int  # the TLS listener on 127.0.0.1 (there is no plain one)
    credentials: str  # "user:password" of the node's only user
    ctl: Callable[..., subprocess.CompletedProcess[str]]  # rabbitmqctl against this node, e.g. ctl("list_queues")

    def url(self, ca: Path) -> str:
        return amqps_url(self.port, ca, credentials=self.credentials)


@contextlib.contextmanager
def tls_rabbitmq(pki: Pki) -> Iterator[TlsRabbitmq]:
    """A RabbitMQ node of the test's own (`rabbitmq-server` in the foreground, its own node name, distribution
    port, Mnesia, logs, config and cookie in a temporary directory; no plugins) listening for AMQP over TLS only,
    with the test certificate; clients are not asked for one. Waits until an AMQP connection verified against the
    test CA opens (about 5 s here). Stopped with `rabbitmqctl stop`, killed if that fails; its files go."""
    root = Path(tempfile.mkdtemp(prefix="payments-tls-rabbitmq-"))
    port, user = free_port(), f"payments:{secrets.token_hex(8)}"
    node = f"payments-tls-{os.getpid()}-{secrets.token_hex(3)}@localhost"
    (root / "home").mkdir()
    (root / "enabled_plugins").write_text("[].\n")
    (root / "rabbitmq-env.conf").write_text("")  # not the machine's, which names its node
    name, password = user.split(":")
    (root / "rabbitmq.conf").write_text(
        f"listeners.tcp = none\nlisteners.ssl.default = 127.0.0.1:{port}\n"
        f"ssl_options.cacertfile = {pki.ca}\nssl_options.certfile = {pki.cert}\nssl_options.keyfile = {pki.key}\n"
        "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n"
        f"default_user = {name}\ndefault_pass = {password}\nloopback_users = none\n")
    env = {**os.environ, "HOME": str(root / "home"), "RABBITMQ_NODENAME": node,
           "RABBITMQ_DIST_PORT": str(free_port()), "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
           "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"), "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
           "RABBITMQ_LOG_BASE": str(root / "log"), "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
           "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
           "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_CRASH_DUMP": str(root / "erl_crash.dump")}

    def ctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", node, "-q", *args], env=env, cwd=root,
                              capture_output=True, text=True, timeout=timeout, check=False)

    assert (RABBITMQ_BIN / "rabbitmq-server").exists(), "RabbitMQ is not installed (apt-get install rabbitmq-server)"
    with (root / "server.log").open("ab") as log:
        process = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=env, cwd=root, stdout=log,
                                   stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its own process group, to kill it whole if need be
    try:
        parameters = pika.URLParameters(amqps_url(port, pki.ca, credentials=user))

        def answers_or_exited() -> bool:
            if process.poll() is not None:
                return True
            socket.create_connection(("127.0.0.1", port), timeout=2).close()  # listening (pika would log refusals)
            pika.BlockingConnection(parameters).close()
            return True
        wait_for(answers_or_exited, "the TLS RabbitMQ node accepting AMQP over TLS", timeout=120)
        assert process.poll() is None, f"rabbitmq-server exited: {(root / 'server.log').read_text()[-4000:]}"
        yield TlsRabbitmq(node, port, user, ctl)
    finally:
        if process.poll() is None:
            stopping = False
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                stopping = ctl("stop", timeout=60).returncode == 0
            try:
                process.wait(60 if stopping else 0.1)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
        shutil.rmtree(root, ignore_errors=True)
