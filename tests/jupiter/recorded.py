"""The recorded answers (tests/data/jupiter/, sources in its README) and the keys they name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from solders.pubkey import Pubkey

DATA = Path(__file__).resolve().parents[1] / "data" / "jupiter"
SOL = Pubkey.from_string("So11111111111111111111111111111111111111112")
USDC = Pubkey.from_string("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
JUP = Pubkey.from_string("JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN")
#: The taker in the docs' Ultra order transactions (their ``taker`` field is redacted).
DOCS_TAKER = Pubkey.from_string("GpLjUnj5q8V6jkaaT7q26rQ4hzn7KYoebLRWfk16hTwh")


def load(name: str) -> Any:
    """A recorded answer, parsed."""
    return json.loads((DATA / name).read_text())
