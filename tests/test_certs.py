"""The CA, the SuperLink certificate and the node keys: a real TLS handshake, real SSH keys."""

from __future__ import annotations

import socket
import ssl
import stat
import threading

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

from fl_sim.certs import LOOPBACK, write_node_key, write_tls


def test_a_client_trusting_the_ca_accepts_the_server_on_loopback(tmp_path):
    write_tls(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    with socket.create_server((LOOPBACK, 0)) as listener:
        port = listener.getsockname()[1]

        def serve():
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with (
            socket.create_connection((LOOPBACK, port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname=LOOPBACK) as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(timeout=10)


def test_the_server_key_is_private(tmp_path):
    write_tls(tmp_path)
    assert stat.S_IMODE((tmp_path / "server.key").stat().st_mode) == 0o600


def test_node_keys_are_the_p384_openssh_pairs_flower_expects(tmp_path):
    write_node_key(tmp_path / "node_0")
    private = load_ssh_private_key((tmp_path / "node_0").read_bytes(), password=None)
    public = load_ssh_public_key((tmp_path / "node_0.pub").read_bytes())
    assert isinstance(private.curve, ec.SECP384R1)
    assert private.public_key().public_numbers() == public.public_numbers()
    assert (tmp_path / "node_0.pub").read_text().startswith("ecdsa-sha2-nistp384 ")
    assert stat.S_IMODE((tmp_path / "node_0").stat().st_mode) == 0o600
