"""docs/grafana-dashboard.json read as Grafana reads it: its panels, their queries, the metric
names they use, and each query made concrete for a plain Prometheus (no Grafana in between)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DASHBOARD", "GRAFANA_VARIABLES", "Target", "all_panels", "concrete", "exposed_names", "load", "metric_names", "targets",
]

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"

#: Grafana's built-in variables, as concrete PromQL for an instant query at the end of a short
#: run: every window covers the whole run (under two minutes), so each panel sees everything the
#: run did. Grafana itself sets ``$__rate_interval`` to at least four scrape intervals and
#: ``$__range`` to the time picker's span; any other variable fails :func:`concrete`.
GRAFANA_VARIABLES: Mapping[str, str] = {
    "__rate_interval": "5m",
    "__interval": "5m",
    "__range": "5m",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
#: A metric name: ``xorj_`` then snake case (no label or function of PromQL starts so).
_METRIC = re.compile(r"\b(xorj_[a-z0-9_]+)\b")
#: Sample-name suffixes a family of each type exposes.
_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


@dataclass(frozen=True)
class Target:
    """One query of one panel."""

    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"panel {self.panel!r} target {self.ref_id}: {self.expr}"


def all_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, rows and the panels a collapsed row holds included, in dashboard order."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", ())


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    return json.loads(path.read_text())


def targets(dashboard: Mapping[str, Any]) -> list[Target]:
    """Every query of every panel (rows included), in dashboard order."""
    return [
        Target(str(p["title"]), str(t["refId"]), str(t["expr"]))
        for p in all_panels(dashboard) for t in p.get("targets", ())
    ]


def concrete(expr: str) -> str:
    """``expr`` with Grafana's variables replaced by :data:`GRAFANA_VARIABLES`.

    Raises:
        KeyError: a variable the test does not know (a new dashboard variable needs a value here).
    """
    return _VARIABLE.sub(lambda m: GRAFANA_VARIABLES[m.group(1) or m.group(2)], expr)


def metric_names(expr: str) -> set[str]:
    """The ``xorj_`` sample names an expression reads."""
    return set(_METRIC.findall(expr))


def exposed_names(families: Iterable[Any]) -> set[str]:
    """Every sample name the metric families (``registry.collect()``, or a parsed scrape) expose."""
    return {f.name + suffix for f in families for suffix in _SUFFIXES.get(f.type, ("",))}
