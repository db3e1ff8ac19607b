"""Halt acknowledgements: who has acked the current halt epoch, who is missing, and when it completed.

Pure bookkeeping, no actor: the kill switch broadcasts, watches and replaces; this records what
came of it. A halt is complete when every live participant has acked and every actor replaced for
silence has a replacement that acked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from xorj_actors.kill_switch._messages import HaltProgress

__all__ = ["HaltAcks"]


class HaltAcks:
    """The acknowledgements of one halt epoch (participants are named by urn).

    Args:
        clock: monotonic clock, for the halt latency (trigger to complete).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.acked: set[str] = set()
        self.pending: set[str] = set()
        #: names of actors replaced for not acking (this epoch)
        self.replaced: list[str] = []
        #: names of actors replaced for silence whose replacement has not acked yet
        self.awaiting_replacement: set[str] = set()
        self.trigger_mono: float | None = None
        self.halt_latency: float | None = None

    def triggered(self) -> None:
        """A new halt decided now: the latency counts from here."""
        self.trigger_mono = self.clock()

    def start_epoch(self, urns: Iterable[str]) -> None:
        """The halt goes out to ``urns``: nobody has acked it yet."""
        if self.trigger_mono is None:
            self.trigger_mono = self.clock()
        self.halt_latency = None
        self.acked = set()
        self.replaced = []
        self.awaiting_replacement = set()
        self.pending = set(urns)

    def expect(self, urn: str) -> bool:
        """A participant that registered during the halt must ack it; False if it already has."""
        if urn in self.acked:
            return False
        self.pending.add(urn)
        return True

    def ack(self, urn: str) -> None:
        """``urn`` acked the current epoch (a replacement's ack is matched by :meth:`settle`)."""
        self.acked.add(urn)
        self.pending.discard(urn)

    def ack_all(self, urns: list[str]) -> None:
        """Every one of ``urns`` acked the current epoch (a batch of :meth:`ack`)."""
        self.acked.update(urns)
        self.pending.difference_update(urns)

    def settle(self, names: Mapping[str, str]) -> None:
        """A replacement that acked stands in for its predecessor; ``names`` maps urn to name
        as the runtime shows it now (a child is named after it started, maybe after its ack)."""
        self.awaiting_replacement.difference_update(names[u] for u in self.acked if u in names)

    def forget(self, urn: str) -> None:
        """``urn`` is gone (ended, or unreachable): the halt no longer waits for it."""
        self.acked.discard(urn)
        self.pending.discard(urn)

    def give_up(self, urn: str, name: str) -> None:
        """``urn`` did not ack in time and is being replaced: the halt waits for its replacement."""
        self.replaced.append(name)
        self.awaiting_replacement.add(name)
        self.pending.discard(urn)

    def clear(self) -> None:
        """Recovered: no halt to wait for."""
        self.trigger_mono = None
        self.pending = set()
        self.awaiting_replacement = set()

    def completed(self) -> bool:
        """True once, when the halt has just completed (its latency is then recorded)."""
        if self.pending or self.awaiting_replacement or self.trigger_mono is None or self.halt_latency is not None:
            return False
        self.halt_latency = self.clock() - self.trigger_mono
        return True

    def status(self, names: Mapping[str, str], halted: bool) -> dict[str, Any]:
        """The acknowledgement fields of the kill switch's status; ``names`` maps urn to name."""
        return {
            "acked": tuple(sorted(names.get(u, u) for u in self.acked)),
            "missing": tuple(sorted({names.get(u, u) for u in self.pending} | self.awaiting_replacement)),
            "complete": halted and not self.pending and not self.awaiting_replacement,
            "halt_latency_s": self.halt_latency,
            "replaced": tuple(self.replaced),
        }

    def progress(self, halted: bool, ack_deadline_s: float, epoch: int) -> HaltProgress:
        """The counts the metrics read: all zero unless a halt still awaits acknowledgements."""
        waiting = len(self.pending) + len(self.awaiting_replacement)
        if not halted or not waiting or self.trigger_mono is None:
            return HaltProgress(live=0, acked=0, triggered_mono=None, ack_deadline_s=ack_deadline_s, epoch=epoch)
        acked = len(self.acked)
        return HaltProgress(
            live=acked + waiting, acked=acked, triggered_mono=self.trigger_mono, ack_deadline_s=ack_deadline_s,
            epoch=epoch,
        )
