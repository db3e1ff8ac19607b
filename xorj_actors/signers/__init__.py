"""Signer actors: one per key; the only path to funds.

Until the execution issue brings the PKCS#11, KMS and dev-key backends, the tree holds a signer
with no backend: it takes part in the halt protocol (halted first) and refuses every request.
"""

from xorj_actors.signers._signer import SignRequest, SignResult, Signer

__all__ = ["SignRequest", "SignResult", "Signer"]
