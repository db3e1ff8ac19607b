"""Jito's block engine, spoken exactly: tips, bundles, sandwich protection (docs/JITO.md).

Typed, immutable answers; the engine's no as a :class:`Refusal` value; pure helpers for the tip
and the ``jitodontfront`` mark. No localnet here: the localnet serves the same paths and shapes.

Names load on first use (:mod:`xorj_actors._lazy`): ``xorj_actors.config`` imports
``jito.settings``, and loading a config must not import aiohttp and solders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xorj_actors._lazy import lazy_exports

if TYPE_CHECKING:
    from xorj_actors.jito._answers import (
        MAX_IDS,
        BlockEngineRefused,
        BundleStatus,
        InflightBundle,
        InflightStatus,
        MalformedAnswer,
        Refusal,
        RefusalReason,
        TipFloor,
        parse_bundle_statuses,
        parse_inflight_statuses,
        parse_tip_accounts,
        parse_tip_floor,
        refusal_from_answer,
    )
    from xorj_actors.jito._client import BUNDLES_PATH, TIP_FLOOR_PATH, TRANSACTIONS_PATH, BlockEngineClient, SentTransaction
    from xorj_actors.jito._tips import (
        bundle_id,
        dont_front_problem,
        is_dont_front,
        tables_without,
        tip_is_static,
        tip_lamports,
        tip_transfer,
        with_dont_front,
    )
    from xorj_actors.jito.settings import DONT_FRONT_PREFIX, MIN_TIP_LAMPORTS, JitoSettings, TipPercentile

_HOMES = {
    "MAX_IDS": "_answers",
    "BlockEngineRefused": "_answers",
    "BundleStatus": "_answers",
    "InflightBundle": "_answers",
    "InflightStatus": "_answers",
    "MalformedAnswer": "_answers",
    "Refusal": "_answers",
    "RefusalReason": "_answers",
    "TipFloor": "_answers",
    "parse_bundle_statuses": "_answers",
    "parse_inflight_statuses": "_answers",
    "parse_tip_accounts": "_answers",
    "parse_tip_floor": "_answers",
    "refusal_from_answer": "_answers",
    "BUNDLES_PATH": "_client",
    "TIP_FLOOR_PATH": "_client",
    "TRANSACTIONS_PATH": "_client",
    "BlockEngineClient": "_client",
    "SentTransaction": "_client",
    "bundle_id": "_tips",
    "dont_front_problem": "_tips",
    "is_dont_front": "_tips",
    "tables_without": "_tips",
    "tip_is_static": "_tips",
    "tip_lamports": "_tips",
    "tip_transfer": "_tips",
    "with_dont_front": "_tips",
    "DONT_FRONT_PREFIX": "settings",
    "MIN_TIP_LAMPORTS": "settings",
    "JitoSettings": "settings",
    "TipPercentile": "settings",
}

__all__ = [
    "BUNDLES_PATH",
    "BlockEngineClient",
    "BlockEngineRefused",
    "BundleStatus",
    "DONT_FRONT_PREFIX",
    "InflightBundle",
    "InflightStatus",
    "JitoSettings",
    "MAX_IDS",
    "MIN_TIP_LAMPORTS",
    "MalformedAnswer",
    "Refusal",
    "RefusalReason",
    "SentTransaction",
    "TIP_FLOOR_PATH",
    "TRANSACTIONS_PATH",
    "TipFloor",
    "TipPercentile",
    "bundle_id",
    "dont_front_problem",
    "is_dont_front",
    "parse_bundle_statuses",
    "parse_inflight_statuses",
    "parse_tip_accounts",
    "parse_tip_floor",
    "refusal_from_answer",
    "tables_without",
    "tip_is_static",
    "tip_lamports",
    "tip_transfer",
    "with_dont_front",
]

__getattr__ = lazy_exports(__name__, _HOMES)
