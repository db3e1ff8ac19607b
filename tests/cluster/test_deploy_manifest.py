"""The clustered Kubernetes manifest starts what docs/CLUSTER.md describes: N engines with a
stable node id each, NATS with JetStream at the version the engine is tested against, and one
PostgreSQL; and the engine accepts the arguments the manifest gives it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _objects() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes-cluster.yaml").read_text()) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def _container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_every_engine_replica_runs_as_its_own_node_with_a_stable_id() -> None:
    engines = _objects()["StatefulSet/xorj-actors"]
    assert engines["spec"]["replicas"] >= 3
    engine = _container(engines, "engine")
    args = engine["args"]
    assert args[args.index("--node-id") + 1] == "$(POD_NAME)"
    pod_name = next(e for e in engine["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # One machine lost takes one node's share only.
    anti = engines["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"


def test_nats_runs_jetstream_on_persistent_storage_at_the_tested_version() -> None:
    objects = _objects()
    nats = objects["StatefulSet/nats"]
    assert nats["spec"]["replicas"] == 3
    assert _container(nats, "nats")["image"].startswith("nats:2.9.10")
    assert "jetstream" in objects["ConfigMap/nats-config"]["data"]["nats.conf"]
    assert nats["spec"]["volumeClaimTemplates"]
    assert "StatefulSet/postgres" in objects


def test_the_engine_accepts_the_manifests_arguments() -> None:
    engine = _container(_objects()["StatefulSet/xorj-actors"], "engine")
    usage = subprocess.run(
        [sys.executable, "-m", "xorj_actors.cli", engine["args"][0], "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (a for a in engine["args"] if a.startswith("--")):
        assert flag in usage, flag
