"""``ctl reload-secrets``'s table (ctl.py renders the other commands)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["render_reload"]


def render_reload(result: Mapping[str, Any]) -> str:
    """The reload's outcome: each credential's source, what changed, what is held or missing."""
    if not result["reloaded"]:
        lines = ["secrets reload REFUSED, the old values stay:"] + [f"  {m}" for m in result["missing"]]
        return "\n".join(lines)
    changed = set(result["changed"])
    held = set(result["held"])
    lines = [f"secrets reloaded ({result['trigger']}): {len(changed)} changed, {len(held)} held"]
    for name, source in result["sources"].items():
        mark = "held: the new value is not taken (see below; docs/AUDIT.md, Key epochs)" if name in held else "changed" if name in changed else ""
        lines.append(f"  {name:<32} {source:<5} {mark}".rstrip())
    epoch = result.get("audit_key") or {}
    if "refused" in epoch:
        lines.append(f"  audit key held: {epoch['refused']}")
    elif epoch:
        lines.append(f"  audit key rotated ({epoch['reason']}): fingerprint {epoch['old_fingerprint']} -> "
                     f"{epoch['new_fingerprint']}, KEY_ROTATION entry {epoch['sequence']}")
    return "\n".join(lines)
