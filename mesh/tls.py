"""TLS for the whole mesh: the grid's ``tls`` files made into SSL contexts, and TLS failures in plain words.

A grid with ``tls: {cert, key, ca}`` makes every node serve ``wss://`` (and its HTTP
pages as ``https://``) with :func:`server_context`, and every client of a node (links,
``send``, ``echo``, ``status``) verify it with :func:`client_context`: the node's
certificate must be signed by the grid's CA and name the host the grid gives the node
(an IP address or a name). TLS authenticates the nodes to their clients; clients prove
they belong to the mesh with the grid's token (``auth``), not with certificates.

The grid's rules (:mod:`mesh.grid.rules`) check only the form of ``tls``: they do no
I/O. The files are read here, where the grid is used (the CLI reads them with the grid,
as it reads the token's variable; a node when it opens), and every problem is a
:class:`~mesh.errors.GridError` at the line of the key that names the file: missing,
unreadable, not PEM, a key that does not match its certificate.

:func:`describe_tls_error` turns an :class:`ssl.SSLError` into one line: ``certificate
verify failed: not signed by the grid's CA (tls.ca: ca.pem)``, ``certificate has
expired``, ``the peer speaks plain ws://, not TLS``... No asyncio or websockets here.
"""

from __future__ import annotations

import re
import ssl
from typing import NoReturn

from mesh.errors import GridError
from mesh.grid import TLSFiles

__all__ = [
    "MIN_VERSION",
    "MeshContext",
    "check",
    "client_context",
    "describe_tls_error",
    "is_tls_error",
    "names_mismatch",
    "server_context",
    "verify_own",
]

#: The oldest TLS version a node or a client accepts.
MIN_VERSION = ssl.TLSVersion.TLSv1_2
#: OpenSSL's verify codes that mean "not signed by a CA we trust" (X509_V_ERR_*).
_UNTRUSTED = {2, 18, 19, 20, 21, 27, 30}
_EXPIRED = 10
_NOT_YET_VALID = 9
_NAME_MISMATCH = {62, 64}  # hostname, IP address
#: What OpenSSL says when the peer's bytes are not TLS records (a plain HTTP server answered).
_NOT_TLS = ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE")
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")
_PEM_KEY = re.compile(rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----")


class MeshContext(ssl.SSLContext):
    """An SSL context built from the grid's ``tls``, which it keeps for the errors that name its files."""

    tls: TLSFiles | None = None


def check(tls: TLSFiles) -> None:
    """Read the three files and build both contexts: GridError at the line of the first file that is wrong."""
    server_context(tls)
    client_context(tls)


def server_context(tls: TLSFiles) -> MeshContext:
    """What a node serves with: its certificate chain and key, TLS 1.2 or later."""
    _read(tls, "cert", _PEM_CERT, "a PEM certificate (no -----BEGIN CERTIFICATE----- block)")
    key = _read(tls, "key", _PEM_KEY, "a PEM private key (no -----BEGIN PRIVATE KEY----- line)")
    if b"ENCRYPTED" in key:
        _fail(tls, "key", "is encrypted: a node cannot ask for its passphrase; give it a key without one")
    context = MeshContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSION
    context.tls = tls
    try:
        context.load_cert_chain(tls.cert, tls.key, password=_no_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            _fail(tls, "key", f"does not match the certificate ({tls.shown('cert')})")
        _fail(tls, "cert", f"cannot be used with {tls.shown('key')}: {_reason(exc)}")
    except OSError as exc:  # the file changed between the two reads
        _fail(tls, "cert", f"cannot be read: {_strerror(exc)}")
    return context


def client_context(tls: TLSFiles, *, check_hostname: bool = True) -> MeshContext:
    """What a client verifies a node with: signed by the grid's CA, for the node's host; TLS 1.2 or later."""
    _read(tls, "ca", _PEM_CERT, "a PEM certificate (no -----BEGIN CERTIFICATE----- block)")
    context = MeshContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    context.minimum_version = MIN_VERSION
    context.tls = tls
    if not check_hostname:
        context.check_hostname = False
    try:
        context.load_verify_locations(cafile=tls.ca)
    except (ssl.SSLError, ValueError) as exc:
        _fail(tls, "ca", f"is not a PEM certificate that can be loaded: {_reason(exc)}")
    except OSError as exc:
        _fail(tls, "ca", f"cannot be read: {_strerror(exc)}")
    return context


def verify_own(tls: TLSFiles) -> str | None:
    """Why a client of the grid would refuse this machine's certificate (tls.cert), or None if it would not.

    A TLS handshake between the server and client contexts, in memory (no socket): the
    certificate must be signed by the grid's CA and be valid now. The host is not
    checked: each machine of a grid may hold a certificate for its own address.
    """
    client_side = client_context(tls, check_hostname=False)
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context(tls).wrap_bio(to_server, to_client, server_side=True)
    client = client_side.wrap_bio(to_client, to_server, server_side=False)
    for _ in range(8):  # a TLS 1.3 handshake takes a few round trips
        done = True
        for end in (client, server):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                done = False
            except ssl.SSLError as exc:
                return describe_tls_error(exc, client_side) if end is client else None
        if done:
            break
    return None


def is_tls_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a TLS failure (a certificate refused, a peer that does not speak TLS)."""
    return isinstance(exc, ssl.SSLError) or isinstance(exc, ssl.CertificateError)


def describe_tls_error(
    exc: BaseException,
    context: ssl.SSLContext | None = None,
    *,
    ca: str | None = None,
    host: str = "the node's host in the grid",
) -> str | None:
    """One line for a TLS failure (None if ``exc`` is not one); ``context`` names the grid's CA file.

    For a peer that is not a node of the grid (the MQTT bridge's broker), ``ca`` says which
    CA its certificate was checked against and ``host`` where its host was given.
    """
    tls = context.tls if isinstance(context, MeshContext) else None
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code in _UNTRUSTED:
            if ca is not None:
                return f"certificate verify failed: not signed by {ca}"
            shown = f" ({tls.shown('ca')})" if tls is not None else ""
            return f"certificate verify failed: not signed by the grid's CA{shown}"
        if code == _EXPIRED:
            return "certificate verify failed: certificate has expired"
        if code == _NOT_YET_VALID:
            return "certificate verify failed: certificate is not valid yet (are the clocks right?)"
        if code in _NAME_MISMATCH:
            found = re.search(r"not valid for '([^']*)'", exc.verify_message or "")
            named = f"'{found[1]}'" if found else "the node's host"
            return f"the certificate is not for {named}, {host}"
        return f"certificate verify failed: {exc.verify_message or _reason(exc)}"
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or "")
        if reason in _NOT_TLS:
            return "the peer speaks plain ws://, not TLS"
        if reason.startswith(("TLSV1_ALERT_", "SSLV3_ALERT_")):
            return f"the peer refused the TLS handshake: {reason.split('ALERT_', 1)[1].lower().replace('_', ' ')}"
        return f"TLS failed: {_reason(exc)}"
    if isinstance(exc, ssl.CertificateError):
        return f"certificate verify failed: {exc}"
    return None


def names_mismatch(expected: str, names: list[str]) -> str:
    """``the certificate is for 'X', not 'Y'``: a certificate's names against the host the grid gives the node."""
    shown = ", ".join(f"'{name}'" for name in names) or "no host at all"
    return f"the certificate is for {shown}, not '{expected}'"


def _read(tls: TLSFiles, key: str, form: re.Pattern[bytes], what: str) -> bytes:
    path = getattr(tls, key)
    try:
        with open(path, "rb") as file:
            data = file.read(1 << 20)
    except OSError as exc:
        _fail(tls, key, f"cannot be read: {_strerror(exc)}" + (f" ({path})" if path != tls.written.get(key) else ""))
    if not form.search(data):
        _fail(tls, key, f"is not {what}")
    return data


def _fail(tls: TLSFiles, key: str, message: str) -> NoReturn:
    raise GridError(tls.path, tls.line_of(key), f"{tls.shown(key)} {message}")


def _no_password() -> str:
    raise ValueError("an encrypted key")


def _strerror(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[0].lower() + text[1:] if text else type(exc).__name__


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    return str(exc)
