"""deploy/iam (issue 18): least-privilege policy documents, evaluated.

A small evaluator of AWS's documented rules (an explicit Deny wins, else an Allow that matches,
else denied; ``*``/``?`` wildcards in actions, case-insensitive, and in resources; ``NotAction``;
the condition operators the documents use, with AWS's missing-key semantics: a positive operator
fails on a missing key, a negated one or ``...IfExists`` matches) decides each AWS call the code
makes. The calls are found in the code itself, so a new boto3 call with no row below fails here
first: every call the engine makes is allowed to the engine's role, every call of the operator's
commands to the operator's role, every call of the key ceremony (``keys init``, ``keys rotate``) to
the ceremony's role and only in an MFA session; the destructive ones are denied to the engine (and
deletes to all), and the operator can neither sign with a vault key nor change its policy.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

from xorj_actors.audit import AnchorSettings

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "deploy" / "iam"
ENGINE_ROLE = "arn:aws:iam::111122223333:role/xorj-engine"
OPERATOR_ROLE = "arn:aws:iam::111122223333:role/xorj-operator"
CEREMONY_ROLE = "arn:aws:iam::111122223333:role/xorj-key-ceremony"
ROLES = {"engine": ENGINE_ROLE, "operator": OPERATOR_ROLE, "ceremony": CEREMONY_ROLE}
POLICY_OF = {"engine": "engine-role-policy.json", "operator": "operator-role-policy.json",
             "ceremony": "key-ceremony-role-policy.json"}
BUCKET = "arn:aws:s3:::xorj-audit-anchors"
ANCHOR = f"{BUCKET}/audit/00000000000000000001-{'a' * 64}-{'b' * 64}.jsonl"
#: A vault key: under kms-key-policy.json, which names the roles (no statement delegates it to IAM).
KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
#: A key the ceremony has just created: under KMS's default key policy (the account, so the roles'
#: IAM policies decide) until the ceremony puts kms-key-policy.json on it.
NEW_KEY = "arn:aws:kms:us-east-1:111122223333:key/0000abcd-12ab-34cd-56ef-1234567890ab"
ALIAS = "arn:aws:kms:us-east-1:111122223333:alias/xorj-vault-0007"
SECRET = "arn:aws:secretsmanager:us-east-1:111122223333:secret:xorj/XORJ_AUDIT_HMAC_KEY-AbCdEf"
HTTP_SECRET = "arn:aws:secretsmanager:us-east-1:111122223333:secret:xorj/XORJ_HTTP_HMAC_KEY-AbCdEf"
RETIRED_SECRET = "arn:aws:secretsmanager:us-east-1:111122223333:secret:xorj/XORJ_AUDIT_RETIRED_HMAC_KEYS-AbCdEf"
#: Keys others issued or hold: the engine reads them, never rotates them (docs/SECURITY.md, "Key rotation").
OTHERS_SECRET = "arn:aws:secretsmanager:us-east-1:111122223333:secret:xorj/XORJ_JUPITER_API_KEY-AbCdEf"
RETENTION_DAYS = AnchorSettings().retention_days
#: An anchor's put as the Anchorer makes it: COMPLIANCE, retained ``retention_days`` (and an hour).
LOCKED = {"s3:object-lock-mode": "COMPLIANCE", "s3:object-lock-retain-until-date": "2033-12-01T01:00:00Z",
          "s3:object-lock-remaining-retention-days": str(RETENTION_DAYS)}
SHORT = {**LOCKED, "s3:object-lock-remaining-retention-days": "1"}
SIGN = {"kms:SigningAlgorithm": "ED25519_SHA_512", "kms:MessageType": "RAW"}
#: A session of a role assumed with MFA.
MFA = {"aws:MultiFactorAuthPresent": "true"}

#: Every boto3 call the code makes (module, client method) -> who makes it and the request as IAM
#: sees it: (action, resource, condition context). "engine": the running engine, `check` and the
#: read-only commands; "operator": `audit bucket --apply`; "ceremony": `keys init`, `keys rotate`.
CALLS: dict[str, tuple[str, list[tuple[str, str, dict[str, str]]]]] = {
    "list_objects_v2": ("engine", [("s3:ListBucket", BUCKET, {"s3:prefix": "audit/"})]),
    "get_object": ("engine", [("s3:GetObject", ANCHOR, {})]),
    # PutObject with Object Lock headers needs s3:PutObjectRetention as well (AWS, Object Lock).
    "put_object": ("engine", [("s3:PutObject", ANCHOR, LOCKED), ("s3:PutObjectRetention", ANCHOR, LOCKED)]),
    "get_object_lock_configuration": ("engine", [("s3:GetBucketObjectLockConfiguration", BUCKET, {})]),
    "get_bucket_lifecycle_configuration": ("engine", [("s3:GetLifecycleConfiguration", BUCKET, {})]),
    "head_bucket": ("operator", [("s3:ListBucket", BUCKET, {})]),
    "create_bucket": ("operator", [("s3:CreateBucket", BUCKET, {}), ("s3:PutBucketObjectLockConfiguration", BUCKET, {}),
                                   ("s3:PutBucketVersioning", BUCKET, {})]),
    "put_bucket_lifecycle_configuration": ("operator", [("s3:PutLifecycleConfiguration", BUCKET, {})]),
    "delete_bucket_lifecycle": ("operator", [("s3:PutLifecycleConfiguration", BUCKET, {})]),
    "sign": ("engine", [("kms:Sign", KEY, SIGN)]),
    "get_public_key": ("engine", [("kms:GetPublicKey", KEY, {})]),
    "describe_key": ("engine", [("kms:DescribeKey", KEY, {})]),
    "create_key": ("ceremony", [("kms:CreateKey", "*", MFA)]),
    "list_aliases": ("ceremony", [("kms:ListAliases", "*", MFA)]),
    "create_alias": ("ceremony", [("kms:CreateAlias", ALIAS, MFA), ("kms:CreateAlias", NEW_KEY, MFA),
                                  ("kms:CreateAlias", KEY, MFA)]),
    "update_alias": ("ceremony", [("kms:UpdateAlias", ALIAS, MFA), ("kms:UpdateAlias", KEY, MFA),
                                  ("kms:UpdateAlias", NEW_KEY, MFA)]),
    "delete_alias": ("ceremony", [("kms:DeleteAlias", ALIAS, MFA), ("kms:DeleteAlias", NEW_KEY, MFA)]),
    "disable_key": ("ceremony", [("kms:DisableKey", KEY, MFA)]),
    "get_secret_value": ("engine", [("secretsmanager:GetSecretValue", SECRET, {})]),
    # Key rotation: the engine's own keys only, and the retired audit keys' secret made once.
    "put_secret_value": ("engine", [("secretsmanager:PutSecretValue", s, {}) for s in (SECRET, HTTP_SECRET, RETIRED_SECRET)]),
    "create_secret": ("engine", [("secretsmanager:CreateSecret", RETIRED_SECRET, {})]),
}
#: The ceremony also makes the engine's calls: `keys init` reads the new key (still under the default
#: key policy), `keys rotate` reads both keys and signs the moves of the funds with the old one; it
#: puts kms-key-policy.json on every new key (`aws kms put-key-policy`) and may read it back.
CEREMONY_ALSO = [
    ("kms:Sign", KEY, {**SIGN, **MFA}), ("kms:GetPublicKey", KEY, MFA), ("kms:DescribeKey", KEY, MFA),
    ("kms:GetPublicKey", NEW_KEY, MFA), ("kms:DescribeKey", NEW_KEY, MFA),
    ("kms:PutKeyPolicy", NEW_KEY, MFA), ("kms:PutKeyPolicy", KEY, MFA), ("kms:GetKeyPolicy", KEY, MFA),
]
#: The operator reads a vault's public key (`keys show`) and restores archived anchors by hand
#: (docs/AUDIT.md, "Archived anchors").
OPERATOR_ALSO = [("kms:GetPublicKey", KEY, {}), ("kms:DescribeKey", KEY, {}), ("s3:RestoreObject", ANCHOR, {})]
#: What the engine's role must never do, whatever the other statements say.
ENGINE_DENIED = [
    ("s3:DeleteObject", ANCHOR, {}),
    ("s3:DeleteObjectVersion", ANCHOR, {}),
    ("s3:BypassGovernanceRetention", ANCHOR, {}),
    ("s3:PutObject", ANCHOR, {}),  # an anchor without Object Lock
    ("s3:PutObject", ANCHOR, {"s3:object-lock-mode": "GOVERNANCE"}),  # or in a mode that can be shortened
    ("s3:PutObjectRetention", ANCHOR, {"s3:object-lock-mode": "GOVERNANCE"}),
    ("s3:PutObject", ANCHOR, SHORT),  # COMPLIANCE, but for a day: gone long before the audit is done
    ("s3:PutObjectRetention", ANCHOR, SHORT),
    ("s3:PutObject", f"{BUCKET}/elsewhere/x", LOCKED),
    ("s3:PutBucketObjectLockConfiguration", BUCKET, {}),
    ("s3:PutLifecycleConfiguration", BUCKET, {}),
    ("s3:PutBucketPolicy", BUCKET, {}),
    ("s3:DeleteBucket", BUCKET, {}),
    ("s3:ListBucket", BUCKET, {"s3:prefix": "other/"}),
    ("kms:Sign", KEY, {"kms:SigningAlgorithm": "ED25519_SHA_512", "kms:MessageType": "DIGEST"}),
    ("kms:Decrypt", KEY, {}),
    ("kms:ScheduleKeyDeletion", KEY, {}),
    ("kms:DisableKey", KEY, {}),
    ("kms:PutKeyPolicy", KEY, {}),
    ("kms:CreateGrant", KEY, {}),
    ("secretsmanager:PutSecretValue", OTHERS_SECRET, {}),
    ("secretsmanager:PutSecretValue", "arn:aws:secretsmanager:us-east-1:111122223333:secret:xorj/XORJ_RECOVERY_KEY_1-AbCdEf", {}),
    ("secretsmanager:PutSecretValue", "arn:aws:secretsmanager:us-east-1:111122223333:secret:xorj/XORJ_HTTP_HMAC_KEY_2-AbCdEf", {}),
    ("secretsmanager:CreateSecret", OTHERS_SECRET, {}),
    ("secretsmanager:DeleteSecret", SECRET, {}),
    ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:111122223333:secret:other/x", {}),
]
#: Denied to the operator too: the archive outlives every role.
OPERATOR_DENIED = [
    ("s3:DeleteObject", ANCHOR, {}),
    ("s3:DeleteObjectVersion", ANCHOR, {}),
    ("s3:BypassGovernanceRetention", ANCHOR, {}),
    ("s3:DeleteBucket", BUCKET, {}),
    ("s3:PutObject", ANCHOR, {}),
    ("s3:PutObject", ANCHOR, SHORT),
    ("s3:PutObjectRetention", ANCHOR, SHORT),
    ("kms:ScheduleKeyDeletion", KEY, {}),
    # No vault key in the everyday role's hands: it could sign any transfer out of the vault, or
    # rewrite the key policy (NobodyDeletesAVaultKey included); not even in an MFA session.
    ("kms:Sign", KEY, SIGN),
    ("kms:Sign", KEY, {**SIGN, **MFA}),
    ("kms:PutKeyPolicy", KEY, MFA),
    ("kms:DisableKey", KEY, MFA),
    ("kms:UpdateAlias", KEY, MFA),
    ("kms:CreateKey", "*", MFA),
    ("kms:UpdateAlias", ALIAS, MFA),
]
#: What the ceremony must never do, MFA or not.
CEREMONY_DENIED = [
    ("kms:ScheduleKeyDeletion", KEY, MFA),
    ("kms:Sign", KEY, {"kms:SigningAlgorithm": "ED25519_PH_SHA_512", "kms:MessageType": "RAW", **MFA}),
    ("kms:Sign", KEY, {"kms:SigningAlgorithm": "ED25519_SHA_512", "kms:MessageType": "DIGEST", **MFA}),
    ("kms:Decrypt", KEY, MFA),
    ("kms:CreateGrant", KEY, MFA),
    ("s3:DeleteObject", ANCHOR, MFA),
    ("secretsmanager:GetSecretValue", SECRET, MFA),
]


def _load(name: str) -> dict[str, Any]:
    return json.loads((IAM / name).read_text())


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, keys in condition.items():
        if_exists = operator.endswith("IfExists")
        op = operator.removesuffix("IfExists")
        for key, expected in keys.items():
            values = [str(v) for v in _listed(expected)]
            actual = context.get(key)
            if op == "Null":
                if (actual is None) != (values[0] == "true"):
                    return False
            elif actual is None:
                if not (if_exists or op.startswith("StringNot")):
                    return False
            elif op == "StringEquals":
                if actual not in values:
                    return False
            elif op == "StringNotEquals":
                if actual in values:
                    return False
            elif op == "StringLike":
                if not any(fnmatch.fnmatchcase(actual, v) for v in values):
                    return False
            elif op == "Bool":
                if actual.lower() not in [v.lower() for v in values]:
                    return False
            elif op == "NumericLessThan":
                if not any(float(actual) < float(v) for v in values):
                    return False
            else:
                raise AssertionError(f"condition operator {operator} is not understood by this evaluator")
    return True


def _matches(statement: dict[str, Any], principal: str | None, action: str, resource: str, context: dict[str, str]) -> bool:
    if principal is not None:
        principals = _listed(statement["Principal"]["AWS"])
        if "*" not in principals and principal not in principals:
            return False
    if "NotAction" in statement:
        if any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _listed(statement["NotAction"])):
            return False
    elif not any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _listed(statement["Action"])):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


def decide(policy: dict[str, Any], action: str, resource: str, context: dict[str, str], principal: str | None = None) -> str:
    """``Allow``, ``Deny`` (an explicit Deny matched) or ``ImplicitDeny``."""
    matched = [s["Effect"] for s in policy["Statement"] if _matches(s, principal, action, resource, context)]
    return "Deny" if "Deny" in matched else "Allow" if "Allow" in matched else "ImplicitDeny"


def allowed(who: str, action: str, resource: str, context: dict[str, str]) -> bool:
    """Whether the role ``who`` may: the key policy alone on a vault key (it names the roles; no
    statement delegates the key to IAM); else the role's identity policy (S3, Secrets Manager,
    aliases, creating keys, a new key still under KMS's default key policy)."""
    if resource == KEY:
        return decide(_load("kms-key-policy.json"), action, resource, context, principal=ROLES[who]) == "Allow"
    return decide(_load(POLICY_OF[who]), action, resource, context) == "Allow"


def test_every_document_is_a_policy() -> None:
    for path in sorted(IAM.glob("*.json")):
        policy = json.loads(path.read_text())
        assert policy["Version"] == "2012-10-17", path.name
        sids = [s["Sid"] for s in policy["Statement"]]
        assert len(sids) == len(set(sids)), path.name
        for s in policy["Statement"]:
            assert s["Effect"] in ("Allow", "Deny") and ("Action" in s) != ("NotAction" in s), (path.name, s["Sid"])
            assert ("Principal" in s) == (path.name == "kms-key-policy.json"), (path.name, s["Sid"])


def _code_calls() -> set[str]:
    """Every AWS client method the package calls: ``client.m(``, ``self._client.m``,
    ``_secrets_manager().m(``, ``get_paginator("m")`` in the modules that use boto3 or botocore."""
    found: set[str] = set()
    for path in (ROOT / "xorj_actors").rglob("*.py"):
        text = path.read_text()
        if "boto" not in text:
            continue
        found |= set(re.findall(r"\b(?:client|self\._client|_secrets_manager\(\))\.([a-z_]+)\b", text))
        found |= set(re.findall(r'get_paginator\("([a-z0-9_]+)"\)', text))
    return found - {"close", "get_paginator"}


def test_every_aws_call_the_code_makes_is_classified() -> None:
    calls = _code_calls()
    assert {"put_object", "sign", "get_secret_value", "list_objects_v2", "put_bucket_lifecycle_configuration"} <= calls
    assert calls - set(CALLS) == set(), "AWS calls with no row in CALLS: who makes them, and which IAM actions?"


@pytest.mark.parametrize("call", sorted(CALLS))
def test_each_call_is_allowed_to_the_role_that_makes_it(call: str) -> None:
    who, requests = CALLS[call]
    for action, resource, context in requests:
        assert allowed(who, action, resource, context), f"{call}: {action} on {resource} denied to the {who}"


def test_the_ceremony_rotates_keys_only_with_mfa_and_no_other_role_does() -> None:
    for action, resource, context in OPERATOR_ALSO:
        assert allowed("operator", action, resource, context), action
    ceremony = CEREMONY_ALSO + [r for who, requests in CALLS.values() if who == "ceremony" for r in requests]
    engine_calls = {(a, r) for who, requests in CALLS.values() if who == "engine" for a, r, _ in requests}
    for action, resource, context in ceremony:
        assert allowed("ceremony", action, resource, context), f"{action} on {resource}"
        without = {k: v for k, v in context.items() if k != "aws:MultiFactorAuthPresent"}
        assert not allowed("ceremony", action, resource, without), f"{action} on {resource} without MFA"
        assert not allowed("ceremony", action, resource, {**without, "aws:MultiFactorAuthPresent": "false"}), action
        if (action, resource) not in {(a, r) for a, r, _ in OPERATOR_ALSO}:  # it reads a vault's public key
            assert not allowed("operator", action, resource, context), f"the operator may {action} on {resource}"
        if (action, resource) not in engine_calls:  # the engine signs and reads the vault key itself
            assert not allowed("engine", action, resource, context), f"the engine may {action} on {resource}"
    for who, requests in CALLS.values():
        if who == "operator":
            for action, resource, context in requests:
                if action != "s3:ListBucket":  # head_bucket: the engine lists its prefix anyway
                    assert not allowed("engine", action, resource, context), f"the engine may {action}"


@pytest.mark.parametrize(("action", "resource", "context"), ENGINE_DENIED)
def test_the_engine_never_deletes_loosens_or_strays(action: str, resource: str, context: dict[str, str]) -> None:
    assert not allowed("engine", action, resource, context)


@pytest.mark.parametrize(("action", "resource", "context"), OPERATOR_DENIED)
def test_the_operator_never_deletes_the_archive_nor_holds_a_vault_key(action: str, resource: str,
                                                                      context: dict[str, str]) -> None:
    assert not allowed("operator", action, resource, context)


@pytest.mark.parametrize(("action", "resource", "context"), CEREMONY_DENIED)
def test_the_ceremony_never_deletes_a_key_nor_signs_another_format(action: str, resource: str,
                                                                   context: dict[str, str]) -> None:
    assert not allowed("ceremony", action, resource, context)


def test_the_policies_retention_is_the_configured_one() -> None:
    """``NoWriteWithShorterRetention`` carries ``[audit.anchor] retention_days`` (deploy/iam/README.md):
    a put that would keep an anchor for less is denied, one as the Anchorer makes it is not."""
    for name in ("engine-role-policy.json", "operator-role-policy.json"):
        (deny,) = [s for s in _load(name)["Statement"] if s["Sid"] == "NoWriteWithShorterRetention"]
        assert deny["Effect"] == "Deny" and set(deny["Action"]) == {"s3:PutObject", "s3:PutObjectRetention"}, name
        assert deny["Condition"] == {"NumericLessThan": {"s3:object-lock-remaining-retention-days": str(RETENTION_DAYS)}}
    for who in ("engine", "operator"):
        days = {**LOCKED, "s3:object-lock-remaining-retention-days": str(RETENTION_DAYS - 1)}
        assert not allowed(who, "s3:PutObject", ANCHOR, days) and allowed(who, "s3:PutObject", ANCHOR, LOCKED)


def test_the_deletes_are_explicit_denies_not_omissions() -> None:
    engine = _load("engine-role-policy.json")
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
                   "s3:PutBucketObjectLockConfiguration", "s3:PutLifecycleConfiguration"):
        assert decide(engine, action, ANCHOR if "Object" in action and "Lock" not in action else BUCKET, {}) == "Deny"
    key = _load("kms-key-policy.json")
    assert decide(key, "kms:Decrypt", KEY, {}, principal=ENGINE_ROLE) == "Deny"
    assert decide(key, "kms:ScheduleKeyDeletion", KEY, {}, principal=OPERATOR_ROLE) == "Deny"
    for action in ("kms:Sign", "kms:PutKeyPolicy", "kms:DisableKey"):
        assert decide(key, action, KEY, {**SIGN, **MFA}, principal=OPERATOR_ROLE) == "Deny", action
        assert decide(key, action, KEY, SIGN, principal=CEREMONY_ROLE) == "Deny", action  # no MFA


def test_the_evaluator_follows_awss_rules() -> None:
    policy = {"Statement": [
        {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret/*"},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*", "Condition": {"StringEquals": {"k": "v"}}},
    ]}
    assert decide(policy, "S3:getobject", "arn:aws:s3:::b/x", {}) == "Allow"
    assert decide(policy, "s3:GetObject", "arn:aws:s3:::b/secret/x", {}) == "Deny"
    assert decide(policy, "s3:ListBucket", "arn:aws:s3:::b", {}) == "ImplicitDeny"
    assert decide(policy, "s3:PutObject", "x", {"k": "v"}) == "Allow"
    assert decide(policy, "s3:PutObject", "x", {}) == "ImplicitDeny"  # a positive operator on a missing key
    mfa = {"Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}},
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"NumericLessThan": {"days": "10"}}},
    ]}
    assert decide(mfa, "a", "x", {"aws:MultiFactorAuthPresent": "True"}) == "Allow"
    assert decide(mfa, "a", "x", {"aws:MultiFactorAuthPresent": "false"}) == "ImplicitDeny"
    assert decide(mfa, "a", "x", {}) == "ImplicitDeny"
    assert decide(mfa, "a", "x", {"aws:MultiFactorAuthPresent": "true", "days": "9"}) == "Deny"
    assert decide(mfa, "a", "x", {"aws:MultiFactorAuthPresent": "true", "days": "10"}) == "Allow"
