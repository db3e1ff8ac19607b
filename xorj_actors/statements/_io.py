"""What a statement reconciliation reads: the chain (JSON-RPC) and the ledger (the audit log).

Kept apart from the comparison rules (:mod:`._compare`), which see only plain values.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xorj_actors.audit import AuditEntry, Store, chain_store, list_chains, parse_utc_timestamp, verified_entries
from xorj_actors.statements._compare import LAMPORTS, ChainTx, LedgerTrade, Opening

__all__ = ["OPENING", "ChainError", "RpcReader", "VaultAccounts", "read_ledger", "tx_effect"]

#: ``what`` of the SYSTEM_EVENT that records a vault's opening balances (correlation ``opening:<vault>``).
OPENING = "opening balances"
_INTENT, _EXECUTION, _CONFIRMATION = "TRADE_INTENT", "TRADE_EXECUTION", "TRADE_CONFIRMATION"
#: getTransaction requests per JSON-RPC batch.
_BATCH = 100


class ChainError(RuntimeError):
    """The node did not answer a read, or answered something unusable."""


@dataclass(frozen=True, slots=True)
class VaultAccounts:
    """A vault's accounts: its authority (SOL, fees) and its token account for each mint."""

    vault_id: str
    authority: str
    token_accounts: Mapping[str, str]  # mint -> address


class RpcReader:
    """Blocking JSON-RPC reads at ``confirmed`` (a reconciliation is rare; no event loop needed)."""

    def __init__(self, url: str, timeout_s: float = 30.0, not_found_tries: int = 3, not_found_wait_s: float = 1.0) -> None:
        self.url, self.timeout_s = url, timeout_s
        #: getTransaction of a transaction that just landed may answer null on a node behind the
        #: one that confirmed it: asked this many times, ``not_found_wait_s`` apart, before "not found".
        self.not_found_tries, self.not_found_wait_s = not_found_tries, not_found_wait_s

    def _post(self, body: Any) -> Any:
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:  # noqa: S310 - configured URL
                return json.loads(reply.read())
        except (OSError, ValueError) as exc:
            raise ChainError(f"{self.url}: {exc}") from None

    def _call(self, method: str, params: list[Any]) -> Any:
        answer = self._post({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        if not isinstance(answer, dict) or "error" in answer:
            raise ChainError(f"{method}: {answer.get('error') if isinstance(answer, dict) else answer!r}")
        return answer.get("result")

    def balances(self, vault: VaultAccounts) -> tuple[int, dict[str, int]]:
        """``(slot, asset -> base units)`` of the vault, every account read at one slot."""
        mints = sorted(vault.token_accounts)
        keys = [vault.authority, *(vault.token_accounts[m] for m in mints)]
        result = self._call("getMultipleAccounts", [keys, {"encoding": "jsonParsed", "commitment": "confirmed"}])
        try:
            slot, values = int(result["context"]["slot"]), result["value"]
            out = {LAMPORTS: int(values[0]["lamports"]) if values[0] else 0}
            for mint, value in zip(mints, values[1:], strict=True):
                out[mint] = int(value["data"]["parsed"]["info"]["tokenAmount"]["amount"]) if value else 0
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ChainError(f"getMultipleAccounts: unexpected answer: {exc!r}") from None
        return slot, out

    def signatures_for(self, address: str, after_slot: int, limit: int = 1000) -> list[tuple[str, int]] | None:
        """``(signature, slot)`` of the transactions touching ``address`` after ``after_slot``,
        newest first, page by page; None when the node does not serve ``getSignaturesForAddress``."""
        out: list[tuple[str, int]] = []
        options: dict[str, Any] = {"limit": limit, "commitment": "confirmed"}
        while True:
            answer = self._post({"jsonrpc": "2.0", "id": 1, "method": "getSignaturesForAddress", "params": [address, options]})
            if not isinstance(answer, dict) or (answer.get("error") or {}).get("code") == -32601:
                return None
            if "error" in answer:
                raise ChainError(f"getSignaturesForAddress: {answer['error']}")
            page = [(str(r["signature"]), int(r["slot"])) for r in answer.get("result") or []]
            out += [(sig, slot) for sig, slot in page if slot > after_slot]
            if len(page) < limit or page[-1][1] <= after_slot:
                return out
            options = {**options, "before": page[-1][0]}

    def transactions(self, signatures: Sequence[str], vault: VaultAccounts) -> dict[str, ChainTx]:
        """The chain's record of each signature as it touched ``vault``; one the node does not
        have is asked again (``not_found_tries``) before it is recorded as not found."""
        out = self._transactions(list(dict.fromkeys(signatures)), vault)
        for _ in range(self.not_found_tries - 1):
            missing = [sig for sig, tx in out.items() if not tx.found]
            if not missing:
                break
            time.sleep(self.not_found_wait_s)
            out.update(self._transactions(missing, vault))
        return out

    def _transactions(self, sigs: list[str], vault: VaultAccounts) -> dict[str, ChainTx]:
        out: dict[str, ChainTx] = {}
        for start in range(0, len(sigs), _BATCH):
            chunk = sigs[start:start + _BATCH]
            body = [
                {"jsonrpc": "2.0", "id": i, "method": "getTransaction",
                 "params": [s, {"encoding": "json", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}]}
                for i, s in enumerate(chunk)
            ]
            answers = self._post(body)
            if not isinstance(answers, list):
                raise ChainError(f"getTransaction batch: unexpected answer {answers!r}")
            for answer in answers:
                if not isinstance(answer, dict) or "error" in answer:
                    raise ChainError(f"getTransaction: {answer}")
                sig = chunk[int(answer["id"])]
                out[sig] = tx_effect(sig, answer.get("result"), vault)
        return out


def tx_effect(signature: str, result: Mapping[str, Any] | None, vault: VaultAccounts) -> ChainTx:
    """What one ``getTransaction`` result (``json`` encoding) did to ``vault``'s accounts."""
    if result is None:
        return ChainTx(signature, found=False)
    try:
        meta, message = result["meta"], result["transaction"]["message"]
        keys = list(message["accountKeys"])
        loaded = meta.get("loadedAddresses") or {}
        keys += list(loaded.get("writable", ())) + list(loaded.get("readonly", ()))
        deltas: dict[str, int] = {}
        fee_paid = 0
        if vault.authority in keys:
            i = keys.index(vault.authority)
            deltas[LAMPORTS] = int(meta["postBalances"][i]) - int(meta["preBalances"][i])
            fee_paid = int(meta.get("fee") or 0) if i == 0 else 0
        mint_of = {address: mint for mint, address in vault.token_accounts.items()}

        def amounts(rows: Any) -> dict[str, int]:
            found: dict[str, int] = {}
            for row in rows or ():
                mint = mint_of.get(keys[int(row["accountIndex"])])
                if mint is not None and row.get("mint") == mint:
                    found[mint] = int(row["uiTokenAmount"]["amount"])
            return found

        pre, post = amounts(meta.get("preTokenBalances")), amounts(meta.get("postTokenBalances"))
        for mint in pre.keys() | post.keys():
            deltas[mint] = post.get(mint, 0) - pre.get(mint, 0)
        err = meta.get("err")
        return ChainTx(signature, found=True, slot=int(result["slot"]), err=None if err is None else json.dumps(err),
                       deltas={a: d for a, d in deltas.items() if d}, token_mints=frozenset(pre.keys() | post.keys()),
                       fee_paid=fee_paid)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ChainError(f"getTransaction {signature}: unexpected answer: {exc!r}") from None


def _details(entry: AuditEntry) -> dict[str, Any]:
    try:
        details = json.loads(entry.details)
    except ValueError:
        details = None
    return details if isinstance(details, dict) else {}


def _unix(timestamp: str) -> float:
    """An entry's ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` as Unix time (0: not that form)."""
    try:
        return parse_utc_timestamp(timestamp).timestamp()
    except ValueError:
        return 0.0


def read_ledger(store: Store, key: bytes) -> tuple[dict[str, list[LedgerTrade]], dict[tuple[str, str], Opening]]:
    """Every chain's trades by vault, and the vaults' audited opening balances by (vault, authority):
    the first of each.

    Raises:
        UnverifiedEntry: an entry does not verify (the log was edited).
    """
    intents: dict[str, dict[str, Any]] = {}
    opened_at: dict[str, float] = {}
    signatures: dict[str, list[str]] = {}
    outcomes: dict[str, dict[str, Any]] = {}
    openings: dict[tuple[str, str], Opening] = {}
    unknown: set[tuple[str, Any]] = set()
    for chain in list_chains(store):
        rows = verified_entries(chain_store(store, chain), key,
                                event_types=(_INTENT, _EXECUTION, _CONFIRMATION, "SYSTEM_EVENT"))
        for entry in rows:
            d, tid = _details(entry), entry.correlation_id
            if entry.event_type == "SYSTEM_EVENT":
                if d.get("what") == OPENING and isinstance(d.get("balances"), dict):
                    # per authority: a key rotation moves the funds to a new authority, which opens anew
                    at = (str(d.get("vault_id")), str(d.get("authority", "")))
                    opening = Opening(int(d["slot"]), {str(a): int(v) for a, v in d["balances"].items()})
                    if at not in openings or opening.slot < openings[at].slot:
                        openings[at] = opening
            elif tid is None:
                continue
            elif entry.event_type == _INTENT:
                intents.setdefault(tid, d)
                opened_at.setdefault(tid, _unix(entry.timestamp))
            elif entry.event_type == _EXECUTION and d.get("signature"):
                signatures.setdefault(tid, []).append(str(d["signature"]))
                unknown.discard((tid, d.get("attempt")))
            elif entry.event_type == _EXECUTION and d.get("phase") == "signed":
                unknown.add((tid, d.get("attempt")))  # its id comes with a later ``sent`` entry
            elif entry.event_type == _CONFIRMATION:
                outcomes[tid] = d
    trades: dict[str, list[LedgerTrade]] = {}
    for tid, intent in intents.items():
        done = outcomes.get(tid, {})
        trades.setdefault(str(intent.get("vault_id")), []).append(LedgerTrade(
            trade_id=tid, input_mint=str(intent.get("input_mint")), output_mint=str(intent.get("output_mint")),
            signatures=tuple(signatures.get(tid, ())), status=str(done.get("status", "")),
            signature=done.get("signature"), in_amount=int(done.get("in_amount") or 0),
            out_amount=int(done.get("out_amount") or 0), slippage_bps=int(intent.get("slippage_bps") or 0),
            unknown_ids=0 if done else sum(1 for t, _ in unknown if t == tid), opened_at=opened_at.get(tid, 0.0),
        ))
    return trades, openings
