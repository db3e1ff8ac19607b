"""The executor's JSON-RPC bodies are what solders writes (a real node's wire format)."""

from __future__ import annotations

import json

from solders.account_decoder import UiAccountEncoding
from solders.commitment_config import CommitmentLevel
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.config import RpcAccountInfoConfig, RpcContextConfig, RpcSimulateTransactionAccountsConfig, RpcSimulateTransactionConfig
from solders.rpc.requests import GetLatestBlockhash, GetMultipleAccounts, SimulateVersionedTransaction, batch_to_json
from solders.transaction import VersionedTransaction

from xorj_actors.execution._effects_io import batch_json


def test_the_effect_batch_is_the_array_solders_writes() -> None:
    payer = Keypair()
    tx = VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [], [], Hash.default()), [payer])
    keys = [Pubkey.new_unique() for _ in range(3)]
    requests = [
        GetMultipleAccounts(keys, RpcAccountInfoConfig(UiAccountEncoding.Base64, None, CommitmentLevel.Confirmed), id=1),
        SimulateVersionedTransaction(tx, RpcSimulateTransactionConfig(
            sig_verify=False, commitment=CommitmentLevel.Confirmed,
            accounts=RpcSimulateTransactionAccountsConfig(keys, UiAccountEncoding.Base64),
        ), id=2),
        GetLatestBlockhash(RpcContextConfig(CommitmentLevel.Confirmed), id=3),
    ]
    assert json.loads(batch_json(requests)) == json.loads(batch_to_json(requests))
