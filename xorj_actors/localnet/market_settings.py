"""Settings of the localnet's quote service and quantitative engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuoteSettings:
    """``[localnet.quote]``: the Jupiter-shaped quote service."""

    port: int = 0  # 0: a free port


@dataclass(frozen=True, slots=True)
class QuantSettings:
    """``[localnet.quant]``: the quantitative engine's ranked-traders endpoint."""

    port: int = 0  # 0: a free port
