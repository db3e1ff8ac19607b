"""The proof key's store is never a vault key store: a vault's Signer on it would hold the proof
key under the vault id ``proof-key`` (docs/SECURITY.md, "The proof key")."""

from __future__ import annotations

import pytest

from xorj_actors.config import ConfigError, parse_config

VAULT = {
    "pkcs11": 'backend = "pkcs11"\npkcs11.token_label = "vaults"\npkcs11.label_prefix = "v-"\n',
    "kms": 'backend = "kms"\nkms.alias_prefix = "xorj-vaults-"\n',
    "dev_key": 'backend = "dev_key"\ndev_key.seed_file = "vault-seed"\n',
}
#: Another store of the same kind: another token, another alias prefix, another seed file.
APART = {
    "pkcs11": 'backend = "pkcs11"\npkcs11.token_label = "proofs"\npkcs11.label_prefix = "v-"\n',
    "kms": 'backend = "kms"\nkms.alias_prefix = "xorj-proofs-"\n',
    "dev_key": 'backend = "dev_key"\ndev_key.seed_file = "proof-seed"\n',
}


def _config(vault: str, proof: str) -> str:
    return f'[[signers.keys]]\nname = "vaults"\n{vault}\n[proofs.key]\n{proof}'


@pytest.mark.parametrize("backend", sorted(VAULT))
def test_the_proof_key_may_not_share_a_vault_key_store(backend: str) -> None:
    with pytest.raises(ConfigError, match=r"proofs\.key: the same key store as \[\[signers\.keys\]\] 'vaults'"):
        parse_config(_config(VAULT[backend], VAULT[backend]), "engine.toml")
    parse_config(_config(VAULT[backend], APART[backend]), "engine.toml")


def test_the_public_development_seed_is_not_a_shared_store() -> None:
    """The default vault and proof dev stores both derive from the public seed: no store to share."""
    parse_config("", "engine.toml")
