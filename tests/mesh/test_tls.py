"""The grid's tls: its form in the rules, its files read by mesh.tls, and TLS failures in one line."""

from __future__ import annotations

import ssl
from pathlib import Path
from textwrap import dedent

import pytest
import trustme

from mesh.errors import GridError
from mesh.graph import render
from mesh.grid import build_grid, load_grid, read_grid
from mesh.tls import MIN_VERSION, check, client_context, describe_tls_error, server_context, verify_own
from tests.certs import TLS_YAML, write_certs

NODES = "nodes:\n  buzzer: {sketch: buzzer, port: 8766}\n"

FORM_CASES = [
    (
        "not-a-mapping",
        "tls: node.pem\n",
        "grid.yaml:3: 'tls' must be a mapping like {cert: node.pem, key: node-key.pem, ca: ca.pem}",
    ),
    ("empty", "tls: {}\n", "grid.yaml:3: 'tls' must be a mapping like {cert: node.pem, key: node-key.pem, ca: ca.pem}"),
    (
        "missing-ca",
        "tls:\n  cert: node.pem\n  key: node-key.pem\n",
        "grid.yaml:3: 'tls' has no 'ca': it needs cert, key and ca, like {cert: node.pem, key: node-key.pem, ca: ca.pem}",
    ),
    (
        "missing-two",
        "tls: {cert: node.pem}\n",
        "grid.yaml:3: 'tls' has no 'ca' and no 'key': it needs cert, key and ca, like {cert: node.pem, key: node-key.pem, ca: ca.pem}",
    ),
    (
        "unknown-key",
        "tls:\n  cert: node.pem\n  key: node-key.pem\n  ca: ca.pem\n  crt: x.pem\n",
        "grid.yaml:7: unknown key 'crt' in 'tls' (expected: ca, cert, key); did you mean 'cert'?",
    ),
    (
        "not-text",
        "tls:\n  cert: node.pem\n  key: [a, b]\n  ca: ca.pem\n",
        "grid.yaml:5: 'tls': 'key' must be the path of a PEM file (relative to the grid's folder), not ['a', 'b']",
    ),
    (
        "blank",
        "tls:\n  cert: ' '\n  key: k.pem\n  ca: ca.pem\n",
        "grid.yaml:4: 'tls': 'cert' must be the path of a PEM file (relative to the grid's folder), not ' '",
    ),
]


@pytest.mark.parametrize(("text", "message"), [pytest.param(t, m, id=i) for i, t, m in FORM_CASES])
def test_the_form_of_tls_is_checked_at_its_line(text: str, message: str) -> None:
    """A tls that is not three file paths: one error at the line to fix, without reading any file."""
    with pytest.raises(GridError) as caught:
        load_grid(NODES + dedent(text), "grid.yaml")
    assert str(caught.value) == message


def test_tls_paths_are_relative_to_the_grid_and_make_every_uri_wss(tmp_path: Path) -> None:
    """The files are found beside the grid; every node's uri is wss://, without tls ws://."""
    (tmp_path / "grid.yaml").write_text(NODES + TLS_YAML)
    grid = read_grid(tmp_path / "grid.yaml")
    assert grid.tls is not None
    assert (grid.tls.cert, grid.tls.key, grid.tls.ca) == tuple(
        str(tmp_path / name) for name in ("node.pem", "node-key.pem", "ca.pem")
    )
    assert grid.tls.shown("ca") == "tls.ca: ca.pem"
    assert grid.node("buzzer").uri == "wss://127.0.0.1:8766"
    assert grid.with_node("buzzer", port=8777).node("buzzer").uri == "wss://127.0.0.1:8777"
    assert load_grid(NODES).node("buzzer").uri == "ws://127.0.0.1:8766"
    built = build_grid({"a": {"sketch": "clock", "port": 1}}, tls={"cert": "c", "key": "k", "ca": "a"})
    assert built.node("a").uri == "wss://127.0.0.1:1"


def _grid_file(folder: Path, tls: str) -> Path:
    path = folder / "grid.yaml"
    path.write_text(NODES + tls)
    return path


FILE_CASES = [
    # (what to do to the files, the key's line, the message after "grid.yaml:LINE: ")
    (
        "missing-cert",
        lambda f: (f / "node.pem").unlink(),
        4,
        "tls.cert: node.pem cannot be read: no such file or directory (FOLDER/node.pem)",
    ),
    (
        "cert-is-a-key",
        lambda f: (f / "node.pem").write_bytes((f / "node-key.pem").read_bytes()),
        4,
        "tls.cert: node.pem is not a PEM certificate (no -----BEGIN CERTIFICATE----- block)",
    ),
    (
        "key-is-a-cert",
        lambda f: (f / "node-key.pem").write_bytes((f / "ca.pem").read_bytes()),
        5,
        "tls.key: node-key.pem is not a PEM private key (no -----BEGIN PRIVATE KEY----- line)",
    ),
    (
        "ca-is-garbage",
        lambda f: (f / "ca.pem").write_text("hello\n"),
        6,
        "tls.ca: ca.pem is not a PEM certificate (no -----BEGIN CERTIFICATE----- block)",
    ),
    (
        "ca-unreadable",
        lambda f: ((f / "ca.pem").unlink(), (f / "ca.pem").mkdir()),
        6,
        "tls.ca: ca.pem cannot be read: is a directory (FOLDER/ca.pem)",
    ),
    (
        "key-of-another-cert",
        lambda f: (
            write_certs(f, prefix="other-")
            and (f / "node-key.pem").write_bytes((f / "other-node-key.pem").read_bytes())
        ),
        5,
        "tls.key: node-key.pem does not match the certificate (tls.cert: node.pem)",
    ),
]


@pytest.mark.parametrize(("spoil", "line", "message"), [pytest.param(s, n, m, id=i) for i, s, n, m in FILE_CASES])
def test_a_wrong_tls_file_is_an_error_at_its_line(tmp_path: Path, spoil, line: int, message: str) -> None:
    """mesh.tls.check reads the three files: missing, unreadable, not PEM, a key of another certificate."""
    write_certs(tmp_path)
    grid = read_grid(_grid_file(tmp_path, "tls:\n  cert: node.pem\n  key: node-key.pem\n  ca: ca.pem\n"))
    assert grid.tls is not None
    check(grid.tls)  # as written, all is well
    spoil(tmp_path)
    with pytest.raises(GridError) as caught:
        check(grid.tls)
    assert str(caught.value) == f"{tmp_path / 'grid.yaml'}:{line}: {message}".replace("FOLDER", str(tmp_path))


def test_the_contexts_verify_against_the_ca_with_tls_1_2_at_least(tmp_path: Path) -> None:
    """The server context holds the chain; the client context requires a certificate from the CA, for the host."""
    grid = read_grid(_grid_file(tmp_path, TLS_YAML))
    write_certs(tmp_path)
    assert grid.tls is not None
    server, client = server_context(grid.tls), client_context(grid.tls)
    assert server.minimum_version == client.minimum_version == MIN_VERSION == ssl.TLSVersion.TLSv1_2
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    assert len(client.get_ca_certs()) == 1
    assert client.tls is grid.tls


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}")
    exc.verify_code, exc.verify_message, exc.reason = code, message, "CERTIFICATE_VERIFY_FAILED"
    return exc


def _ssl_error(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()}")
    exc.reason = reason
    return exc


ERROR_CASES = [
    (
        "other-ca",
        _verify_error(20, "unable to get local issuer certificate"),
        "certificate verify failed: not signed by the grid's CA (tls.ca: ca.pem)",
    ),
    (
        "self-signed",
        _verify_error(18, "self-signed certificate"),
        "certificate verify failed: not signed by the grid's CA (tls.ca: ca.pem)",
    ),
    ("expired", _verify_error(10, "certificate has expired"), "certificate verify failed: certificate has expired"),
    (
        "not-yet",
        _verify_error(9, "certificate is not yet valid"),
        "certificate verify failed: certificate is not valid yet (are the clocks right?)",
    ),
    (
        "ip",
        _verify_error(64, "IP address mismatch, certificate is not valid for '10.0.0.2'."),
        "the certificate is not for '10.0.0.2', the node's host in the grid",
    ),
    (
        "name",
        _verify_error(62, "Hostname mismatch, certificate is not valid for 'pi'."),
        "the certificate is not for 'pi', the node's host in the grid",
    ),
    ("plain-peer", _ssl_error("WRONG_VERSION_NUMBER"), "the peer speaks plain ws://, not TLS"),
    ("alert", _ssl_error("TLSV1_ALERT_PROTOCOL_VERSION"), "the peer refused the TLS handshake: protocol version"),
    ("other", _ssl_error("NO_SHARED_CIPHER"), "TLS failed: no shared cipher"),
    ("not-tls", ConnectionRefusedError(111, "Connection refused"), None),
]


@pytest.mark.parametrize(("exc", "line"), [pytest.param(e, m, id=i) for i, e, m in ERROR_CASES])
def test_tls_failures_read_as_one_line(tmp_path: Path, exc: BaseException, line: str | None) -> None:
    """Each TLS failure in plain words, naming the grid's CA file where it matters; anything else: None."""
    write_certs(tmp_path)
    grid = read_grid(_grid_file(tmp_path, TLS_YAML))
    assert grid.tls is not None
    assert describe_tls_error(exc, client_context(grid.tls)) == line


def test_an_expired_certificate_still_loads(tmp_path: Path) -> None:
    """A node's own expired certificate is not a grid error: its peers say it has expired."""
    import datetime

    write_certs(tmp_path, ca=trustme.CA(), not_after=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    grid = read_grid(_grid_file(tmp_path, TLS_YAML))
    assert grid.tls is not None
    check(grid.tls)


def test_verify_own_says_why_clients_would_refuse_this_machines_certificate(tmp_path: Path) -> None:
    """A handshake in memory: None for a good certificate, one line for an expired one or another CA's."""
    import datetime

    ca = trustme.CA()
    grid = read_grid(_grid_file(tmp_path, TLS_YAML))
    assert grid.tls is not None
    write_certs(tmp_path, ca=ca)
    assert verify_own(grid.tls) is None
    write_certs(tmp_path, ca=ca, not_after=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    assert verify_own(grid.tls) == "certificate verify failed: certificate has expired"
    write_certs(tmp_path)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    assert verify_own(grid.tls) == "certificate verify failed: not signed by the grid's CA (tls.ca: ca.pem)"


def test_graph_shows_wss_addresses_with_tls() -> None:
    """graph draws each node's address as wss:// when the grid has tls."""
    grid = load_grid(NODES + TLS_YAML)
    assert "buzzer  buzzer  wss://127.0.0.1:8766" in render(grid, "text")
    assert "wss://" not in render(load_grid(NODES), "text")
