"""The proofs of the token (mesh.auth): bound to both nonces, the side, and the conversation they open."""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from mesh import auth

TOKEN = "correct horse battery staple"
BINDING = auth.Binding(target="buzzer", address="127.0.0.1:8766", node="iopin", session="3fa2c09d11be")


def test_proofs_depend_on_the_token_both_nonces_and_the_side():
    """Each proof is bound to both nonces and to its side: none can be replayed or reflected."""
    client, server = auth.nonce(), auth.nonce()
    assert client != server and auth.is_nonce(client) and not auth.is_nonce(client.upper())
    proof = auth.client_proof(TOKEN, client, server, BINDING)
    assert auth.proves(proof, auth.client_proof(TOKEN, client, server, BINDING))
    assert not auth.proves(proof, auth.server_proof(TOKEN, client, server, BINDING))
    assert not auth.proves(proof, auth.client_proof(TOKEN, client, auth.nonce(), BINDING))
    assert not auth.proves(proof, auth.client_proof(TOKEN + "x", client, server, BINDING))
    assert not auth.proves(proof, None) and not auth.proves(proof, "\ud800")
    assert TOKEN not in proof and len(proof) == 64
    assert secrets.compare_digest(proof, auth.client_proof(TOKEN, client, server, BINDING))


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("target", "clock"),  # relayed to another node of the mesh: it computes with its own name
        ("address", "127.0.0.1:8764"),  # dialled elsewhere
        ("node", "attacker"),  # the hello claims someone else
        ("session", "0000000000ff"),  # another session's de-duplication
    ],
)
@pytest.mark.parametrize("proof", [auth.client_proof, auth.server_proof])
def test_a_proof_is_bound_to_the_node_dialled_its_address_and_the_hellos_claims(field, other, proof):
    """A proof made for one conversation proves nothing for another that differs in any bound field."""
    client, server = auth.nonce(), auth.nonce()
    other_binding = dataclasses.replace(BINDING, **{field: other})
    assert not auth.proves(proof(TOKEN, client, server, BINDING), proof(TOKEN, client, server, other_binding))


def test_fields_cannot_run_into_each_other():
    """A claim holding the separator does not make two bindings alike."""
    client, server = auth.nonce(), auth.nonce()
    one = auth.Binding(target="a", address="b|c", node="d", session="")
    two = auth.Binding(target="a|b", address="c", node="d", session="")
    assert auth.client_proof(TOKEN, client, server, one) != auth.client_proof(TOKEN, client, server, two)
