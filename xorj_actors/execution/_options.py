"""What the engine wires into the Executor: endpoints, the audit store, the signer, and hooks."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solders.pubkey import Pubkey

from xorj_actors.audit import AuditSettings
from xorj_actors.breakers import BreakerName
from xorj_actors.execution._messages import TradeOutcome
from xorj_actors.jito.settings import JitoSettings
from xorj_actors.jupiter.settings import JupiterSettings
from xorj_actors.quotas import Quotas

if TYPE_CHECKING:  # the cluster package loads nats-py: a process running alone never needs it
    from xorj_actors.cluster import FenceRefusal, LeaseToken

__all__ = ["BreakerReport", "ExecutorOptions", "FenceCheck", "Gate", "OutcomeHook", "VaultAccount", "VaultAuthority"]

#: Breaker gate: (reduces_exposure) -> refusal reason or None. Called on the executor's loop only.
Gate = Callable[[bool], str | None]
#: Breaker events: (runtime, breaker, ok, detail), i.e. :func:`xorj_actors.breakers.report`.
BreakerReport = Callable[[Any, BreakerName, bool, str], None]
#: (outcome, seconds since the request), for metrics.
OutcomeHook = Callable[[TradeOutcome, float], None]
#: (vault id, mint) -> the vault's token account.
VaultAccount = Callable[[str, str], Pubkey]
#: Vault id -> the lease this node holds on it (:meth:`xorj_actors.cluster.Fence.fence`), or why
#: it may not sign for it. Synchronous and thread-safe: called on the executor's loop.
FenceCheck = Callable[[str], "LeaseToken | FenceRefusal"]
#: Vault id -> its own authority (the wallet, the fee payer, the key that signs); ``KeyError``
#: when its key store shows no key for it.
VaultAuthority = Callable[[str], Pubkey]


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    """The Executor's wiring (its settings are ``[execution]``, passed beside these)."""

    #: JSON-RPC endpoint.
    rpc_url: str
    #: Jupiter's base URL (``/swap/v1/...``, ``/ultra/v1/...``, ``/price/v3``): the localnet's
    #: quote service or ``[jupiter] base_url``.
    quote_url: str
    #: ``[audit]``, to read the ledger back (the Audit actor writes it).
    audit: AuditSettings
    #: Where the audit store is.
    data_dir: Path
    #: Which HMAC-key rules apply (``engine.environment``).
    environment: str
    #: Each vault's own authority: its wallet for the quote service, its fee payer, its key.
    vault_authority: VaultAuthority
    #: The ``[[signers.keys]]`` store that holds the vault keys.
    signer: str
    #: The breaker gate; None: no breakers.
    gate: Gate | None = None
    #: Decimals by mint: quotes are checked against Jupiter's reference prices (``/price/v3``);
    #: None: against their own limits only.
    decimals: Mapping[str, int] | None = None
    #: Breaker events; None: none reported.
    report: BreakerReport | None = None
    #: Called with every outcome that is not a replay (metrics).
    on_outcome: OutcomeHook | None = None
    #: ``[jito]``: tips, sandwich protection, the block engine as a send route (off by default).
    jito: JitoSettings = field(default_factory=JitoSettings)
    #: The block engine's base URL (``[jito] block_engine_url`` or the localnet's).
    block_engine_url: str = ""
    #: The engine's budgets for Jupiter and the block engine (docs/QUOTAS.md); None: none bind
    #: (the in-process localnet has no provider budgets unless ``[quotas] on_localnet``).
    quotas: Quotas | None = None
    #: Called with a send route's name each time a send to it was skipped (metrics).
    on_route_skip: Callable[[str], None] | None = None
    #: Called with each status a Jito bundle of ours is recorded in (``pending``, ``landed``,
    #: ``failed``, ``invalid``), for metrics.
    on_bundle_status: Callable[[str], None] | None = None
    #: ``[jupiter]``: the API key's variable, the request options.
    jupiter: JupiterSettings = field(default_factory=lambda: JupiterSettings(api_key_env=""))
    #: Where the API key is read; None: ``os.environ``.
    environ: Mapping[str, str] | None = None
    #: Seeds the retry jitter (tests); None: random.
    seed: int | None = None
    #: The stablecoin's mint: an exposure-reducing trade sells into it and nothing else.
    stable_mint: str | None = None
    #: Every leg is checked against the vault's token accounts; None: not checked.
    vault_account: VaultAccount | None = None
    #: The cluster's fence (docs/CLUSTER.md): asked before the intent, before the signature and
    #: again before the first send; None: this engine runs alone and holds every vault.
    fence: FenceCheck | None = None
    #: The vaults whose leases this node holds and may sign for (:meth:`xorj_actors.cluster.
    #: Fence.usable`): a cluster node settles the open trades of those vaults only, from every
    #: chain, and leaves the others' to their holders. None: this engine runs alone and settles
    #: every open trade of its own chain.
    held_vaults: Callable[[], Collection[str]] | None = None
