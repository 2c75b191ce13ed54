"""Certificates for tests over TLS, made per test with trustme and written as PEM files.

``write_certs(folder)`` makes a CA and a certificate for ``127.0.0.1`` and ``localhost``
signed by it, writes ``ca.pem``, ``node.pem`` (the chain) and ``node-key.pem`` into
``folder``, and returns the grid's ``tls`` mapping naming them (relative to ``folder``,
where a test writes its grid.yaml). A second call with ``ca=`` reuses a CA; ``not_after``
in the past makes an expired certificate.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import trustme

__all__ = ["TLS_YAML", "write_certs"]

#: The grid's ``tls`` as YAML, for the files write_certs() writes.
TLS_YAML = "tls: {cert: node.pem, key: node-key.pem, ca: ca.pem}\n"


def write_certs(
    folder: Path,
    *,
    ca: trustme.CA | None = None,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    not_after: datetime.datetime | None = None,
    prefix: str = "",
) -> dict[str, str]:
    """Write ``{prefix}ca.pem``, ``{prefix}node.pem``, ``{prefix}node-key.pem`` into ``folder``; the tls mapping."""
    ca = ca or trustme.CA()
    not_before = None
    if not_after is not None and not_after < datetime.datetime.now(datetime.UTC):
        not_before = not_after - datetime.timedelta(days=30)
    leaf = ca.issue_cert(*hosts, not_before=not_before, not_after=not_after)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}ca.pem").write_bytes(ca.cert_pem.bytes())
    (folder / f"{prefix}node.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    (folder / f"{prefix}node-key.pem").write_bytes(leaf.private_key_pem.bytes())
    return {"cert": f"{prefix}node.pem", "key": f"{prefix}node-key.pem", "ca": f"{prefix}ca.pem"}
