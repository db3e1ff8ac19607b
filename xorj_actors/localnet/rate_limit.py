"""A provider's sliding-window request budget, as the localnet's services enforce it."""

from __future__ import annotations

from collections import deque

__all__ = ["RateLimit"]


class RateLimit:
    """At most ``requests`` admitted in any window of ``window_s`` seconds; counts refusals."""

    def __init__(self, requests: int, window_s: float) -> None:
        self.requests, self.window_s = requests, window_s
        self._times: deque[float] = deque()
        self.refused = 0

    def admit(self, now: float, n: int = 1) -> bool:
        """Admit ``n`` requests at ``now`` (a JSON-RPC batch is as many as its entries), or none."""
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        if len(self._times) + n > self.requests:
            self.refused += 1
            return False
        self._times.extend([now] * n)
        return True
