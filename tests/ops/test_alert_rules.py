"""deploy/prometheus: the alerting rules (alerts.yml, and slo.yml's error budgets) and the scrape
config pass promtool's checks, every alert is unit-tested (fired and near-missed) by
alerts_test.yml, every runbook link lands on a section of docs/OPERATIONS.md, and every metric an
alert reads (through slo.yml's recording rules too) is one a running engine exports."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import ENGINE_ENV, Api
from tests.plugins.engine import wait_until
from xorj_actors.config import parse_config
from xorj_actors.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "prometheus"
ALERTS = DEPLOY / "alerts.yml"
#: The error budgets of docs/SLO.md: recording rules, and the burn-rate alerts that read them.
SLO = DEPLOY / "slo.yml"
RULE_FILES = (ALERTS, SLO)
ALERTS_TEST = DEPLOY / "alerts_test.yml"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
#: Prometheus's own series, not the engine's.
PROMETHEUS_SERIES = {"up"}
#: The PromQL keywords and aggregations an expression may hold besides metric names (functions
#: are told apart by the parenthesis after them; grouping clauses are removed first).
PROMQL_WORDS = {
    "and", "or", "unless", "bool", "offset", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "group",
}


def _all_rules() -> list[dict[str, Any]]:
    return [r for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def rules() -> list[dict[str, Any]]:
    """Every alerting rule of every rule file."""
    return [r for r in _all_rules() if "alert" in r]


def recorded() -> dict[str, str]:
    """Every recording rule's series name and its expression."""
    return {r["record"]: r["expr"] for r in _all_rules() if "record" in r}


def promtool_run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_promtool_checks_the_rules_and_the_config(promtool: str) -> None:
    for path in RULE_FILES:
        checked = promtool_run(promtool, "check", "rules", str(path))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        count = sum(len(g["rules"]) for g in yaml.safe_load(path.read_text())["groups"])
        assert f"SUCCESS: {count} rules found" in checked.stdout
    assert {"slo.yml", "alerts.yml"} <= set(yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["rule_files"])
    config = promtool_run(promtool, "check", "config", str(DEPLOY / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    tested = promtool_run(promtool, "test", "rules", str(ALERTS_TEST))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def _covers(expected: dict[str, str], series: dict[str, str]) -> bool:
    """Whether an expected alert's labels agree with every label the input series has too."""
    return all(series[k] == v for k, v in expected.items() if k in series)


def _labels(selector: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', selector))


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    missed: set[str] = set()
    spec = yaml.safe_load(ALERTS_TEST.read_text())
    assert spec["rule_files"] == [p.name for p in RULE_FILES]
    for case in spec["tests"]:
        series = [_labels(s["series"]) for s in case["input_series"]]
        for check in case["alert_rule_test"]:
            name, expected = check["alertname"], [e["exp_labels"] for e in check["exp_alerts"]]
            if expected:
                fired.add(name)
            # A near miss: no alert at all, or input series that no expected alert covers.
            if not expected or any(not any(_covers(e, s) for e in expected) for s in series):
                missed.add(name)
            for alert in check["exp_alerts"]:
                assert alert["exp_annotations"]["runbook"].endswith("#" + name.lower()), name
    names = {r["alert"] for r in rules()}
    assert names - fired == set(), "alerts never fired by alerts_test.yml"
    assert names - missed == set(), "alerts without a near miss in alerts_test.yml"
    assert fired <= names, "alerts_test.yml tests alerts alerts.yml does not have"


#: alerts_test.yml's groups that hold a burn-rate alert at its edges (just over, just under, long
#: window burning with the short one recovered).
EDGE_GROUP = re.compile(r"slo-[a-z]+-(fast|slow)-burn-edges")
#: A burn-rate condition: ``<ratio series> > (<factor> * <budget>)``.
BURN_TERM = re.compile(r"\(([\d.]+) \* ([\d.]+)\)")
#: Mistakes in a burn-rate rule the edge groups must catch, each applied to every burn alert.
MUTATIONS = {
    "factor 10% lower": lambda expr: BURN_TERM.sub(lambda m: f"({float(m[1]) * 0.9:g} * {m[2]})", expr),
    "factor 10% higher": lambda expr: BURN_TERM.sub(lambda m: f"({float(m[1]) * 1.1:g} * {m[2]})", expr),
    "short window dropped": lambda expr: expr.split(" and ")[0],
}


def _burn_alerts() -> list[str]:
    return [g["alert"] for g in yaml.safe_load(SLO.read_text())["groups"][1]["rules"]]


def test_every_burn_alert_has_its_edge_cases() -> None:
    edges: dict[str, set[str]] = {}
    for case in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        if EDGE_GROUP.fullmatch(case.get("name", "")):
            (check,) = case["alert_rule_test"]
            jobs = {_labels(s["series"])["job"] for s in case["input_series"]}
            edges[check["alertname"]] = jobs
            assert [e["exp_labels"]["job"] for e in check["exp_alerts"]] == ["over"], case["name"]
    assert edges == {name: {"over", "under", "recovered"} for name in _burn_alerts()}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_edge_cases_catch_a_wrong_burn_rule(promtool: str, tmp_path: Path, mutation: str) -> None:
    """A test of the alerts that passes with a wrong rule proves nothing: each mutation of every burn
    alert (slo.yml copied, then changed) must fail alerts_test.yml's edge groups for that alert."""
    slo = yaml.safe_load(SLO.read_text())
    for rule in slo["groups"][1]["rules"]:
        mutated = MUTATIONS[mutation](rule["expr"])
        assert mutated != rule["expr"], (mutation, rule["alert"])
        rule["expr"] = mutated
    (tmp_path / "slo.yml").write_text(yaml.safe_dump(slo, sort_keys=False))
    edges = [c for c in yaml.safe_load(ALERTS_TEST.read_text())["tests"] if EDGE_GROUP.fullmatch(c.get("name", ""))]
    spec = {"rule_files": ["slo.yml"], "evaluation_interval": "15s", "tests": edges}
    (tmp_path / "edges_test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    tested = subprocess.run([promtool, "test", "rules", "edges_test.yml"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert tested.returncode != 0, f"{mutation}: the edge cases still pass"
    caught = set(re.findall(r"alertname: (\w+), time:", tested.stdout + tested.stderr))
    assert caught == set(_burn_alerts()), f"{mutation}: not caught for {set(_burn_alerts()) - caught}"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation gone, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_alert_has_labels_a_summary_and_a_runbook_that_exists() -> None:
    text = re.sub(r"^```.*?^```", "", OPERATIONS.read_text(), flags=re.MULTILINE | re.DOTALL)  # no code blocks
    anchors = {github_anchor(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}
    assert "alerts" in anchors
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        path, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert path == "docs/OPERATIONS.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/OPERATIONS.md"


def _expr_metrics(expr: str) -> set[str]:
    """The series names ``expr`` reads (recorded ones, ``level:metric:operations``, included)."""
    expr = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', "", expr)  # selectors, strings, ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    return {w for w in re.findall(r"\b([a-z_][a-z0-9_:]*)\b(?!\s*\()", expr) if w not in PROMQL_WORDS}


def alert_metrics() -> set[str]:
    """Every metric name the alerts' expressions read (their labels and functions left out), a
    recorded series replaced by what its recording rule reads."""
    names: set[str] = set()
    todo = [name for rule in rules() for name in _expr_metrics(rule["expr"])]
    records, seen = recorded(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in records:
            todo.extend(_expr_metrics(records[name]))
        else:
            names.add(name)
    return names


def test_every_recorded_series_an_alert_reads_is_recorded() -> None:
    assert {n for n in alert_metrics() if ":" in n} == set()
    read = {name for rule in rules() for name in _expr_metrics(rule["expr"])}
    assert {n for n in read if ":" in n} <= set(recorded())


#: An engine against its in-process localnet that trades and checks its clock often: every
#: metric an alert reads is exported (the clock gauge once a check succeeds).
LOCALNET_ENGINE = """
[vaults]
count = 2
[supervision]
shutdown_timeout_s = 1.0
[kill_switch]
cooldown_s = 0
[localnet]
enabled = true
vaults = 2
[risk]
clock_check_interval_s = 0.2
"""


@pytest.fixture
def localnet_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(parse_config(LOCALNET_ENGINE), tmp_path / "var", environ=dict(ENGINE_ENV))
    engine.start()
    try:
        yield engine
    finally:
        assert not engine.stop(timeout=10), "actors did not stop"


def test_every_metric_an_alert_reads_is_exported_by_a_running_engine(localnet_engine: Engine) -> None:
    used = alert_metrics()
    assert {"xorj_halt_pending_seconds", "xorj_clock_skew_seconds", "xorj_quota_granted_total", "up"} <= used
    assert {"xorj_trade_landings_total", "xorj_halts_completed_total", "xorj_audit_append_seconds_bucket"} <= used
    rpc = localnet_engine.localnet.server.rpc
    # The localnet serves no getBlockTime (docs/RISK.md): answer it from its chain, as the clock tests do.
    rpc.methods["getBlockTime"] = lambda params: rpc.chain.block_time(int(params[0]))
    api = Api(localnet_engine)

    def exported() -> set[str]:
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        families = text_string_to_metric_families(api.get("/metrics").body.decode())
        return {f.name + s for f in families for s in suffixes.get(f.type, ("",))}

    wait_until(lambda: used - PROMETHEUS_SERIES <= exported(), 30, "every metric the alerts read")
