"""The anchor bucket's lifecycle: anchors age into cheaper storage classes, never out of the bucket.

The rules come from ``[audit.anchor]``: one rule, scoped to the anchors' prefix, with transitions
only. No ``Expiration`` and no ``NoncurrentVersionExpiration``: S3 would refuse to delete a locked
version anyway, but an expiry would still add delete markers that hide anchors from a listing.
Object Lock retention follows a version through every storage-class transition, so the
COMPLIANCE retention the :class:`~xorj_actors.audit.Anchorer` sets is untouched.

``audit bucket`` compares the bucket's configuration with this one; ``audit bucket --apply``
creates the bucket (with Object Lock) if it is missing and puts the rules, then reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xorj_actors.audit.settings import AnchorSettings

#: The rule's ID in the bucket: others' rules (another prefix) are kept as they are.
RULE_ID = "xorj-anchors-lifecycle"


@dataclass(frozen=True, slots=True)
class Drift:
    """One way the bucket differs from the config. ``hides_anchors``: a rule that expires objects
    under the anchors' prefix (Object Lock refuses the deletes, but the delete markers it adds
    hide anchors from every listing: ``audit verify`` would call the log unanchored)."""

    text: str
    hides_anchors: bool = False

    def __str__(self) -> str:
        return self.text


def lifecycle_rule(settings: AnchorSettings) -> dict[str, Any] | None:
    """The lifecycle rule ``settings`` ask for (None: no transition configured)."""
    transitions = []
    if settings.lifecycle_ia_days:
        transitions.append({"Days": settings.lifecycle_ia_days, "StorageClass": "STANDARD_IA"})
    if settings.lifecycle_archive_days:
        transitions.append({"Days": settings.lifecycle_archive_days, "StorageClass": settings.archive_storage_class})
    if not transitions:
        return None
    return {"ID": RULE_ID, "Filter": {"Prefix": settings.prefix}, "Status": "Enabled", "Transitions": transitions}


def _normalised(rule: dict[str, Any]) -> dict[str, Any]:
    """The parts of a rule that matter, as S3 reads them back (it may add empty fields)."""
    prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix", ""))
    transitions = sorted(
        ({"Days": t.get("Days"), "StorageClass": t.get("StorageClass")} for t in rule.get("Transitions", ())),
        key=lambda t: t["Days"] or 0,
    )
    return {
        "ID": rule.get("ID"), "Prefix": prefix, "Status": rule.get("Status"), "Transitions": transitions,
        "Expiration": rule.get("Expiration"), "NoncurrentVersionExpiration": rule.get("NoncurrentVersionExpiration"),
    }


def lifecycle_drift(client: Any, settings: AnchorSettings) -> list[Drift]:
    """How the bucket's lifecycle differs from ``settings`` (empty: as configured).

    Also flags any rule of the bucket that would expire objects under the anchors' prefix.
    """
    rules = _rules_of(client, settings.bucket)
    want = lifecycle_rule(settings)
    ours = [r for r in rules if r.get("ID") == RULE_ID]
    problems = []
    if want is None and ours:
        problems.append(Drift(f"rule {RULE_ID} is in the bucket but [audit.anchor] configures no transition"))
    elif want is not None and not ours:
        problems.append(Drift(f"rule {RULE_ID} is missing: `xorj-actors audit bucket --apply` puts it"))
    elif want is not None and _normalised(ours[0]) != _normalised(want):
        problems.append(Drift(f"rule {RULE_ID} differs: bucket {_normalised(ours[0])}, config {_normalised(want)}"))
    for rule in rules:
        n = _normalised(rule)
        covers = settings.prefix.startswith(n["Prefix"]) or n["Prefix"].startswith(settings.prefix)
        if covers and rule.get("Status") == "Enabled" and (n["Expiration"] or n["NoncurrentVersionExpiration"]):
            text = f"rule {rule.get('ID')!r} expires objects under {settings.prefix!r}: anchors must never expire"
            problems.append(Drift(text, hides_anchors=True))
    return problems


def _rules_of(client: Any, bucket: str) -> list[dict[str, Any]]:
    from botocore.exceptions import ClientError

    try:
        return list(client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
            return []
        raise


def apply_lifecycle(client: Any, settings: AnchorSettings) -> list[Drift]:
    """Put the configured rule (others' rules kept, ours replaced), then read it back: the drift
    left (empty: applied as configured). Idempotent."""
    rules = [r for r in _rules_of(client, settings.bucket) if r.get("ID") != RULE_ID]
    want = lifecycle_rule(settings)
    if want is not None:
        rules.append(want)
    if rules:
        client.put_bucket_lifecycle_configuration(Bucket=settings.bucket, LifecycleConfiguration={"Rules": rules})
    else:
        client.delete_bucket_lifecycle(Bucket=settings.bucket)
    return lifecycle_drift(client, settings)
