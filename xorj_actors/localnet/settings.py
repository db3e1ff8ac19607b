"""Settings of the embedded localnet (chain, quote service, quantitative engine)."""

from __future__ import annotations

from dataclasses import dataclass, field

from xorj_actors.localnet.market_settings import QuantSettings, QuoteSettings


@dataclass(frozen=True, slots=True)
class LocalnetSettings:
    """``[localnet]``: run the offline cluster in-process (development only)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    rpc_port: int = 0  # 0: a free port
    quote: QuoteSettings = field(default_factory=QuoteSettings)
    quant: QuantSettings = field(default_factory=QuantSettings)
