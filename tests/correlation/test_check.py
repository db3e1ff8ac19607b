"""``check``'s correlation line: an engine-wide cap a cluster of engines cannot keep fails."""

from __future__ import annotations

from pathlib import Path

from xorj_actors.check import PRODUCTION_CHECKS, CheckContext, Status, run_checks
from xorj_actors.config import parse_config

CLUSTER = '[cluster]\nnode_id = "n1"\n'


def correlation(config: str, tmp_path: Path) -> tuple[Status, str]:
    [r] = [r for r in run_checks(PRODUCTION_CHECKS, CheckContext(parse_config(config), tmp_path, {})) if r.name == "correlation"]
    return r.status, r.detail


def test_a_global_cap_in_a_cluster_fails_with_why(tmp_path: Path) -> None:
    status, detail = correlation(CLUSTER + "[correlation]\nglobal_max_usd = 50000.0\n", tmp_path)
    assert status is Status.FAIL
    assert "each node keeps its own exposure board" in detail and "set global_max_usd = 0 in a cluster" in detail


def test_a_cluster_without_a_global_cap_and_one_engine_with_one_pass(tmp_path: Path) -> None:
    assert correlation(CLUSTER, tmp_path) == (Status.OK, "per_vault_max_share 0.6, no engine-wide cap")
    assert correlation("[correlation]\nglobal_max_usd = 50000.0\n", tmp_path) == (
        Status.OK, "per_vault_max_share 0.6, global_max_usd 50000 USD"
    )
    assert correlation(CLUSTER + "[correlation]\nenabled = false\nglobal_max_usd = 1.0\n", tmp_path)[0] is Status.OK
