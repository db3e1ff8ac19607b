"""Solana JSON-RPC 2.0 methods over a :class:`~xorj_actors.localnet.chain.Chain`.

Replies and errors follow Agave (the validator mainnet runs): same shapes, same codes, same
messages where a client may match on them.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from solders.hash import Hash
from solders.message import Message, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors.localnet.address_history import AddressHistory
from xorj_actors.localnet.chain import COMMITMENTS, Chain, Commitment, LookupFailure, PreflightFailure, SignatureFailure
from xorj_actors.localnet.encoding import (
    account_json,
    b58decode,
    b58encode,
    pubkey_list,
    transaction_json,
)
from xorj_actors.localnet.fee_market import FeeMarket
from xorj_actors.localnet.genesis import TOKEN_PROGRAM_ID
from xorj_actors.programs import TOKEN_2022_PROGRAM_ID

__all__ = [
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "JsonRpc",
    "RpcError",
    "commitment_of",
    "config_at",
    "decode_transaction",
    "error_reply",
    "param_at",
    "parse_pubkey",
    "parse_signature",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

PARSE_ERROR = -32700
INTERNAL_ERROR = -32603
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
PREFLIGHT_FAILURE = -32002
SIGNATURE_FAILURE = -32003
UNSUPPORTED_TX_VERSION = -32015
MIN_CONTEXT_SLOT_NOT_REACHED = -32016
#: Agave answers getSignatureStatuses from its status cache for about this many slots.
STATUS_CACHE_SLOTS = 300
MAX_SIGNATURES = 256
MAX_ACCOUNTS = 100
LAMPORTS_PER_SIGNATURE = 5_000
VERSION = {"solana-core": "2.2.16", "feature-set": 3294202862}


class RpcError(Exception):
    """A JSON-RPC error reply."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def error_reply(code: int, message: str, request_id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id}


def invalid_params(detail: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"Invalid params: {detail}")


def param_at(params: list[Any], i: int, required: bool = True) -> Any:
    if i < len(params):
        return params[i]
    if required:
        raise invalid_params(f"missing parameter {i}")
    return None


#: Mainnet's epoch length (the localnet never reaches the end of its first).
_SLOTS_PER_EPOCH = 432_000


def config_at(params: list[Any], i: int) -> dict[str, Any]:
    config = param_at(params, i, required=False)
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise invalid_params(f"parameter {i} must be a configuration object")
    return config


def _parsed(parse: Callable[[Any], T], value: Any) -> T:
    try:
        return parse(value)
    except (TypeError, ValueError):
        raise RpcError(INVALID_PARAMS, "Invalid param: Invalid") from None


def parse_pubkey(value: Any) -> Pubkey:
    return _parsed(Pubkey.from_string, value)


def parse_signature(value: Any) -> Signature:
    return _parsed(Signature.from_string, value)


def commitment_of(config: dict[str, Any], default: Commitment = "finalized") -> Commitment:
    value = config.get("commitment", default)
    if value not in COMMITMENTS:
        raise invalid_params(f"unknown commitment {value!r}")
    return value


def _encoded_bytes(value: Any, encoding: str) -> bytes:
    if not isinstance(value, str):
        raise invalid_params("expected an encoded string")
    try:
        if encoding == "base64":
            return base64.b64decode(value, validate=True)
        if encoding == "base58":
            return b58decode(value)
    except (binascii.Error, ValueError) as exc:
        raise RpcError(INVALID_PARAMS, f"invalid {encoding} encoding: {exc}") from None
    raise invalid_params(f"unsupported encoding {encoding!r}")


def _transaction(params: list[Any], config: dict[str, Any]) -> VersionedTransaction:
    return decode_transaction(param_at(params, 0), config.get("encoding", "base58"))


def decode_transaction(value: Any, encoding: Any) -> VersionedTransaction:
    """An encoded transaction parameter (``base58`` or ``base64``); :class:`RpcError` if it is not one."""
    raw = _encoded_bytes(value, encoding)
    try:
        return VersionedTransaction.from_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise RpcError(INVALID_PARAMS, f"failed to deserialize VersionedTransaction: {exc}") from None


class JsonRpc(AddressHistory):
    """The HTTP JSON-RPC methods; every call runs on the chain's thread."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        #: Landed transactions' compute-unit prices, for the two fee methods.
        self.fees = FeeMarket(chain.slot())
        chain.listeners.append(self.fees)
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            name[len("m_") :]: getattr(self, name) for name in dir(self) if name.startswith("m_")
        }

    def handle(self, request: Any) -> dict[str, Any]:
        """One JSON-RPC request object -> its reply object."""
        if not isinstance(request, dict):
            return error_reply(INVALID_REQUEST, "Invalid request")
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params")
        if params is None:
            params = []
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return error_reply(INVALID_REQUEST, "Invalid request", request_id)
        handler = self.methods.get(method)
        if handler is None:
            return error_reply(METHOD_NOT_FOUND, "Method not found", request_id)
        if not isinstance(params, list):
            return error_reply(INVALID_PARAMS, "Invalid params: expected an array", request_id)
        try:
            result = handler(params)
        except RpcError as exc:
            return {"jsonrpc": "2.0", "error": exc.to_json(), "id": request_id}
        except Exception:  # a bug here must not take the connection down: answer as Agave does
            log.exception("localnet: %s failed", method)
            return error_reply(INTERNAL_ERROR, "Internal error", request_id)
        return {"jsonrpc": "2.0", "result": result, "id": request_id}

    def _context(self, value: Any) -> dict[str, Any]:
        return {"context": {"apiVersion": VERSION["solana-core"], "slot": self.chain.slot()}, "value": value}

    def _min_context_slot(self, config: dict[str, Any]) -> None:
        """Agave's ``minContextSlot``: refuse (-32016) while the node is behind it."""
        wanted = config.get("minContextSlot")
        if wanted is None:
            return
        if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 0:
            raise invalid_params("minContextSlot must be a non-negative integer")
        slot = self.chain.slot()
        if slot < wanted:
            raise RpcError(MIN_CONTEXT_SLOT_NOT_REACHED, "Minimum context slot has not been reached", {"contextSlot": slot})

    def _account(self, key: Pubkey, config: dict[str, Any]) -> dict[str, Any] | None:
        encoding = config.get("encoding", "base64")
        if encoding not in ("base64", "base58", "jsonParsed"):
            raise invalid_params(f"unsupported encoding {encoding!r} (base64+zstd is not served)")
        return account_json(self.chain.account(key), encoding, self.chain.decimals_of)

    # -- cluster ----------------------------------------------------------------------------

    def m_getHealth(self, params: list[Any]) -> str:
        return "ok"

    def m_getVersion(self, params: list[Any]) -> dict[str, Any]:
        return dict(VERSION)

    def m_getEpochInfo(self, params: list[Any]) -> dict[str, Any]:
        """Agave's shape; one block per slot, so the block height is the slot."""
        config = config_at(params, 0)
        self._min_context_slot(config)
        slot = self.chain.commitment_slot(commitment_of(config))
        return {
            "absoluteSlot": slot, "blockHeight": slot, "epoch": slot // _SLOTS_PER_EPOCH,
            "slotIndex": slot % _SLOTS_PER_EPOCH, "slotsInEpoch": _SLOTS_PER_EPOCH,
            "transactionCount": len(self.chain.landed),
        }

    def m_getSlot(self, params: list[Any]) -> int:
        return self.chain.commitment_slot(commitment_of(config_at(params, 0)))

    def m_getBlockHeight(self, params: list[Any]) -> int:
        # One block per slot: no skipped slots on the localnet.
        return self.chain.commitment_slot(commitment_of(config_at(params, 0)))

    def m_getBlockTime(self, params: list[Any]) -> int:
        slot = param_at(params, 0)
        if type(slot) is not int or slot < 0:
            raise invalid_params("slot must be a non-negative integer")
        if slot > self.chain.slot():
            raise RpcError(-32004, f"Block not available for slot {slot}")
        return self.chain.block_time(slot)

    def m_getLatestBlockhash(self, params: list[Any]) -> dict[str, Any]:
        config = config_at(params, 0)
        self._min_context_slot(config)
        _, blockhash, last_valid = self.chain.latest_blockhash(commitment_of(config))
        return self._context({"blockhash": str(blockhash), "lastValidBlockHeight": last_valid})

    def m_isBlockhashValid(self, params: list[Any]) -> dict[str, Any]:
        blockhash = _parsed(Hash.from_string, param_at(params, 0))
        return self._context(self.chain.blockhash_valid(blockhash))

    def m_getMinimumBalanceForRentExemption(self, params: list[Any]) -> int:
        size = param_at(params, 0)
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 10 * 1024 * 1024:
            raise invalid_params("data length must be an integer between 0 and 10485760")
        return self.chain.svm.minimum_balance_for_rent_exemption(size)

    def m_getFeeForMessage(self, params: list[Any]) -> dict[str, Any]:
        raw = _encoded_bytes(param_at(params, 0), "base64")
        try:
            message = from_bytes_versioned(raw)
        except (ValueError, TypeError) as exc:
            raise RpcError(INVALID_PARAMS, f"failed to deserialize message: {exc}") from None
        if not self.chain.blockhash_valid(message.recent_blockhash):
            return self._context(None)
        return self._context(LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures)

    def m_getRecentPrioritizationFees(self, params: list[Any]) -> list[dict[str, int]]:
        keys = _parsed(pubkey_list, params[0]) if params else []
        if len(keys) > 128:
            raise invalid_params("Too many inputs provided; max 128")
        return self.fees.recent_prioritization_fees(keys)

    def m_getPriorityFeeEstimate(self, params: list[Any]) -> dict[str, Any]:
        """Helius' method (not Agave's): see :mod:`xorj_actors.localnet.fee_market`."""
        try:
            return self.fees.priority_fee_estimate(param_at(params, 0))
        except ValueError as exc:
            raise invalid_params(str(exc)) from None

    # -- accounts ---------------------------------------------------------------------------

    def m_getBalance(self, params: list[Any]) -> dict[str, Any]:
        key = parse_pubkey(param_at(params, 0))
        config = config_at(params, 1)
        commitment_of(config)
        self._min_context_slot(config)
        return self._context(self.chain.svm.get_balance(key) or 0)

    def m_getAccountInfo(self, params: list[Any]) -> dict[str, Any]:
        key = parse_pubkey(param_at(params, 0))
        config = config_at(params, 1)
        commitment_of(config)
        self._min_context_slot(config)
        return self._context(self._account(key, config))

    def m_getMultipleAccounts(self, params: list[Any]) -> dict[str, Any]:
        keys = _parsed(pubkey_list, param_at(params, 0))
        if len(keys) > MAX_ACCOUNTS:
            raise invalid_params(f"Too many inputs provided; max {MAX_ACCOUNTS}")
        config = config_at(params, 1)
        commitment_of(config)
        self._min_context_slot(config)
        return self._context([self._account(k, config) for k in keys])

    def m_getTokenAccountBalance(self, params: list[Any]) -> dict[str, Any]:
        key = parse_pubkey(param_at(params, 0))
        commitment_of(config_at(params, 1))
        parsed = self._account(key, {"encoding": "jsonParsed"})
        data = parsed["data"] if parsed else None
        if not isinstance(data, dict) or data["parsed"]["type"] != "account":
            raise invalid_params("Invalid param: not a Token account")
        return self._context(data["parsed"]["info"]["tokenAmount"])

    def m_getTokenAccountsByOwner(self, params: list[Any]) -> dict[str, Any]:
        owner = parse_pubkey(param_at(params, 0))
        selector = param_at(params, 1)
        if not isinstance(selector, dict) or len(selector) != 1 or not {"mint", "programId"} >= set(selector):
            raise invalid_params("expected exactly one of mint or programId")
        config = config_at(params, 2)
        commitment_of(config)
        mint = parse_pubkey(selector["mint"]) if "mint" in selector else None
        if mint is None:
            program = parse_pubkey(selector["programId"])
        else:  # Agave looks in the program that owns the mint
            mint_account = self.chain.svm.get_account(mint)
            program = mint_account.owner if mint_account is not None else TOKEN_PROGRAM_ID
        if program not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
            raise invalid_params("unrecognized Token program id")
        found = []
        for key, account in self.chain.svm.get_program_accounts(program):
            data = bytes(account.data)
            # A Token-2022 account is the same 165 bytes, then its account type (2) and extensions.
            is_account = len(data) == 165 or (program == TOKEN_2022_PROGRAM_ID and len(data) > 165 and data[165] == 2)
            if not is_account or data[32:64] != bytes(owner):
                continue
            if mint is not None and data[:32] != bytes(mint):
                continue
            found.append({"pubkey": str(key), "account": self._account(key, config)})
        found.sort(key=lambda item: item["pubkey"])
        return self._context(found)

    def m_requestAirdrop(self, params: list[Any]) -> str:
        key = parse_pubkey(param_at(params, 0))
        lamports = param_at(params, 1)
        if isinstance(lamports, bool) or not isinstance(lamports, int) or not 0 < lamports <= 10**18:
            raise invalid_params("lamports must be a positive integer")
        return str(self.chain.airdrop(key, lamports))

    # -- transactions -----------------------------------------------------------------------

    def m_simulateTransaction(self, params: list[Any]) -> dict[str, Any]:
        config = config_at(params, 1)
        tx = _transaction(params, config)
        commitment_of(config)
        sig_verify = bool(config.get("sigVerify", False))
        replace = bool(config.get("replaceRecentBlockhash", False))
        if sig_verify and replace:
            raise invalid_params("sigVerify may not be used with replaceRecentBlockhash")
        self._min_context_slot(config)
        addresses, encoding = self._simulation_accounts(tx, config.get("accounts"))
        post = None if addresses is None else dict.fromkeys(addresses)
        try:
            _, result = self.chain.simulate(tx, sig_verify=sig_verify, replace_blockhash=replace, post_accounts=post)
        except SignatureFailure as exc:
            raise RpcError(SIGNATURE_FAILURE, str(exc)) from None
        except LookupFailure as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        if addresses is not None and post is not None:
            result["accounts"] = [account_json(post[a], encoding, self.chain.decimals_of) for a in addresses]
        if replace:
            _, blockhash, last_valid = self.chain.latest_blockhash("processed")
            result["replacementBlockhash"] = {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid}
        return self._context(result)

    @staticmethod
    def _simulation_accounts(tx: VersionedTransaction, accounts: Any) -> tuple[list[Pubkey] | None, str]:
        """Agave's ``accounts`` config of simulateTransaction: which post-states, in which encoding."""
        if accounts is None:
            return None, "base64"
        if not isinstance(accounts, dict) or not isinstance(accounts.get("addresses"), list):
            raise invalid_params("accounts must be an object with an array of addresses")
        encoding = accounts.get("encoding") or "base64"
        if encoding in ("base58", "binary"):
            raise RpcError(INVALID_PARAMS, "base58 encoding not supported")  # Agave's words, unprefixed
        if encoding not in ("base64", "jsonParsed"):
            raise invalid_params(f"unsupported encoding {encoding!r} (base64+zstd is not served)")
        addresses = [parse_pubkey(a) for a in accounts["addresses"]]
        limit = len(tx.message.account_keys) + sum(
            len(lookup.writable_indexes) + len(lookup.readonly_indexes)
            for lookup in getattr(tx.message, "address_table_lookups", ())
        )
        if len(addresses) > limit:
            raise RpcError(INVALID_PARAMS, f"Too many accounts provided; max {limit}")
        return addresses, encoding

    def m_sendTransaction(self, params: list[Any]) -> str:
        config = config_at(params, 1)
        tx = _transaction(params, config)
        preflight_commitment = config.get("preflightCommitment", "finalized")
        if preflight_commitment not in COMMITMENTS:
            raise invalid_params(f"unknown commitment {preflight_commitment!r}")
        try:
            return str(self.chain.submit(tx, preflight=not config.get("skipPreflight", False)))
        except SignatureFailure as exc:
            raise RpcError(SIGNATURE_FAILURE, str(exc)) from None
        except PreflightFailure as exc:
            raise RpcError(PREFLIGHT_FAILURE, str(exc), exc.result) from None
        except LookupFailure as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None

    def m_getSignatureStatuses(self, params: list[Any]) -> dict[str, Any]:
        raw = param_at(params, 0)
        if not isinstance(raw, list):
            raise invalid_params("expected an array of signatures")
        if len(raw) > MAX_SIGNATURES:
            raise invalid_params(f"Too many inputs provided; max {MAX_SIGNATURES}")
        signatures = [parse_signature(s) for s in raw]
        search = bool(config_at(params, 1).get("searchTransactionHistory", False))
        statuses = []
        for sig in signatures:
            landed = self.chain.landed.get(sig)
            if landed is None or (not search and self.chain.slot() - landed.slot > STATUS_CACHE_SLOTS):
                statuses.append(None)
                continue
            confirmations, status = self.chain.status_of(landed)
            statuses.append(
                {
                    "slot": landed.slot,
                    "confirmations": confirmations,
                    "err": landed.err_json,
                    "status": {"Ok": None} if landed.err_json is None else {"Err": landed.err_json},
                    "confirmationStatus": status,
                }
            )
        return self._context(statuses)

    def m_getTransaction(self, params: list[Any]) -> dict[str, Any] | None:
        sig = parse_signature(param_at(params, 0))
        config = config_at(params, 1)
        commitment = commitment_of(config)
        if commitment == "processed":
            raise invalid_params("Method does not support commitment below `confirmed`")
        encoding = config.get("encoding", "json")
        if encoding not in ("json", "base64", "base58"):
            raise invalid_params(f"unsupported encoding {encoding!r}")
        landed = self.chain.landed.get(sig)
        if landed is None or not self.chain.slot_reached(landed.slot, commitment):
            return None
        version_json: Any = "legacy" if isinstance(landed.tx.message, Message) else 0
        if version_json == 0 and config.get("maxSupportedTransactionVersion") is None:
            raise RpcError(
                UNSUPPORTED_TX_VERSION,
                "Transaction version (0) is not supported by the requesting client. Please try the "
                'request again with the following configuration parameter: "maxSupportedTransactionVersion": 0',
            )
        raw = bytes(landed.tx)
        if encoding == "json":
            transaction: Any = transaction_json(landed.tx)
        elif encoding == "base64":
            transaction = [base64.b64encode(raw).decode(), "base64"]
        else:
            transaction = [b58encode(raw), "base58"]
        meta = {
            "err": landed.err_json,
            "status": {"Ok": None} if landed.err_json is None else {"Err": landed.err_json},
            "fee": landed.fee,
            "preBalances": landed.pre_balances,
            "postBalances": landed.post_balances,
            "innerInstructions": [],
            "logMessages": landed.logs,
            "preTokenBalances": landed.token_balances[0],
            "postTokenBalances": landed.token_balances[1],
            "rewards": [],
            "loadedAddresses": {
                "writable": [str(k) for k in landed.loaded.writable],
                "readonly": [str(k) for k in landed.loaded.readonly],
            },
            "computeUnitsConsumed": landed.units,
        }
        return {
            "slot": landed.slot,
            "blockTime": self.chain.block_time(landed.slot),
            "transaction": transaction,
            "meta": meta,
            "version": version_json,
        }
