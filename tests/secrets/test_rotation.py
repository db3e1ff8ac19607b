"""Key rotation (docs/SECURITY.md, "Key rotation"): writes through the sources (a 0600 file,
Secrets Manager on ministack; never the environment), the schedule, the HTTP key's grace, the
keys' ages that ``check`` reads, and a cluster's other node taking the rotated key."""

from __future__ import annotations

import os
import stat
import threading
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from xorj_actors.config import Config, parse_config
from xorj_actors.credentials import open_credentials
from xorj_actors.engine._reload import SecretsReload
from xorj_actors.engine._rotation import KeyRotator
from xorj_actors.engine._rotation_gate import ctl_rotation_recorded, schedule_postponed
from xorj_actors.engine._rotation_rules import merge_retired
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.check import Status
from xorj_actors.key_rotation import check_key_ages, fingerprint, key_ages, key_state, rotation_mark
from xorj_actors.ops._http_auth import ApiError, LiveKey, RequestAuthenticator, signed_headers
from xorj_actors.redaction import Redactor
from xorj_actors.secrets import (
    AgeState, AwsSource, AwsSourceSettings, EnvSource, FileSource, FileSourceSettings, NotWritable, OwnedKey,
    SecretAge, SecretSourceError, Source,
)

HTTP, AUDIT = "XORJ_HTTP_HMAC_KEY", "XORJ_AUDIT_HMAC_KEY"
WEEK_S = 7 * 24 * 3600


def _key(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}{uuid.uuid4().hex}"


def _put(directory: Path, name: str, value: str, *, age_s: float = 0.0) -> Path:
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    if age_s:
        then = path.stat().st_mtime - age_s
        os.utime(path, (then, then))
    return path


def _config(secret_dir: Path, order: str = '["file"]', keys: str = '["http"]', more: str = "") -> Config:
    return parse_config(more + f"""
[strategy]
url = "http://127.0.0.1:9"
[secrets]
order = {order}
[secrets.file]
dir = "{secret_dir}"
[secrets.rotation]
enabled = true
keys = {keys}
""")


class Node:
    """One engine's credentials, reload and rotator, as the engine wires them (no actors)."""

    def __init__(self, config: Config, environ: dict[str, str] | None = None, *, may_rotate: bool = True,
                 **rotator: Any) -> None:
        self.provider, _ = open_credentials(config, environ or {})
        self.environ = self.provider.environ()
        self.redactor = Redactor(())
        self.outcomes: list[dict] = []
        self.clock = [1000.0]
        self.reload = SecretsReload(self.provider, config, self.environ, self.redactor)
        self.rotator = KeyRotator(self.provider, config, self.reload, self.redactor, self.outcomes.append,
                                  lambda: may_rotate, clock=lambda: self.clock[0], **rotator)


def test_a_file_is_rewritten_atomically_0600_and_dated_by_its_mtime(tmp_path: Path) -> None:
    source = FileSource(FileSourceSettings(dir=str(tmp_path)))
    _put(tmp_path, HTTP, "old-value", age_s=10 * 24 * 3600)
    assert source.age(HTTP).seconds > 9 * 24 * 3600
    source.write(HTTP, "new-value")
    assert source.read(HTTP) == "new-value" and source.age(HTTP).seconds < 60
    assert stat.S_IMODE((tmp_path / HTTP).stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [HTTP]  # no temp file left
    tmp_path.chmod(0o777)  # a directory others may write to: never written to
    try:
        with pytest.raises(Exception, match="mode 0777 refused"):
            source.write(HTTP, "newer-value")
    finally:
        tmp_path.chmod(0o700)
    assert source.read(HTTP) == "new-value"


def test_the_environment_is_never_written_and_has_no_age() -> None:
    env = EnvSource({HTTP: "x" * 40})
    with pytest.raises(NotWritable, match="in the environment, which the engine cannot write"):
        env.write(HTTP, "y" * 40)
    assert env.age(HTTP).state is AgeState.UNDATED


def test_secrets_manager_keeps_the_previous_version_and_dates_the_current(ministack_endpoint: str, aws_env: None) -> None:
    prefix = f"xorj-rot-{uuid.uuid4().hex[:8]}/"
    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=ministack_endpoint)
    client.create_secret(Name=prefix + HTTP, SecretString="first-value")
    source = AwsSource(AwsSourceSettings(endpoint_url=ministack_endpoint, prefix=prefix))
    source.write(HTTP, "second-value")
    assert client.get_secret_value(SecretId=prefix + HTTP)["SecretString"] == "second-value"
    previous = client.get_secret_value(SecretId=prefix + HTTP, VersionStage="AWSPREVIOUS")
    assert previous["SecretString"] == "first-value"
    age = source.age(HTTP)
    assert age.state is AgeState.DATED and age.seconds < 600
    source.write("XORJ_AUDIT_RETIRED_HMAC_KEYS", "a-retired-key")  # not there yet: created
    assert source.read("XORJ_AUDIT_RETIRED_HMAC_KEYS") == "a-retired-key"
    assert source.age("XORJ_NOT_THERE").state is AgeState.UNREADABLE


def _authenticator(key: LiveKey, clock: list[float]) -> RequestAuthenticator:
    return RequestAuthenticator(key, HTTP, 30.0, 1000, clock=lambda: clock[0])


def _verify(auth: RequestAuthenticator, key: str, now: float) -> None:
    auth.verify(signed_headers(key.encode(), "/kill-switch/activate", b"{}", timestamp=int(now)),
                "/kill-switch/activate", b"{}")


@pytest.mark.parametrize("by_the_engine", [True, False])
def test_the_previous_http_key_works_within_its_grace_only_after_the_engine_s_own_rotation(by_the_engine: bool) -> None:
    old, new = _key("old"), _key("new")
    environ, clock = {HTTP: old}, [1_000_000.0]
    rotated_at = clock[0]
    live = LiveKey(lambda: environ[HTTP].encode(), lambda: environ[HTTP], 300.0,
                   lambda before, after: rotated_at if by_the_engine and (before, after) == (old, new) else None,
                   clock=lambda: clock[0])
    auth = _authenticator(live, clock)
    environ[HTTP] = new  # the reload swapped it in, before any request
    clock[0] += 299
    _verify(auth, new, clock[0])
    if by_the_engine:
        _verify(auth, old, clock[0])  # within the grace, counted from the rotation
    else:  # an operator's change (a leak?): the old key ends at once
        with pytest.raises(ApiError, match="signature does not match"):
            _verify(auth, old, clock[0])
    clock[0] += 2  # past the grace
    with pytest.raises(ApiError, match="signature does not match"):
        _verify(auth, old, clock[0])
    _verify(auth, new, clock[0])


def test_a_due_key_is_rotated_through_its_file_and_taken_and_a_fresh_one_is_not(tmp_path: Path) -> None:
    old = _key("http")
    _put(tmp_path, HTTP, old, age_s=WEEK_S + 60)
    _put(tmp_path, AUDIT, _key("audit"))
    node = Node(_config(tmp_path))
    write, masked = node.provider.write, []

    def write_seen(name: str, value: str, **kw: Any) -> Source:  # a spy on the real write
        masked.append(value not in node.redactor(f"<{value}>"))  # no label: the hex rule cannot mask it
        return write(name, value, **kw)

    node.provider.write = write_seen  # type: ignore[method-assign]
    [answer] = node.rotator.tick()
    new = (tmp_path / HTTP).read_text().strip()
    assert masked == [True]  # the redactor learnt the key before its write
    assert answer["rotated"] and answer["outcome"] == "rotated" and answer["trigger"] == "schedule"
    assert new != old and len(new) == 64 and node.environ[HTTP] == new == node.provider.get(HTTP)
    assert answer["old_fingerprint"] == fingerprint(old) and answer["new_fingerprint"] == fingerprint(new)
    assert node.rotator.rotated(HTTP, old, new) is not None and node.rotator.rotated(HTTP, new, old) is None
    assert not any(new in str(v) or old in str(v) for v in answer.values())
    assert node.rotator.tick() == [] and node.outcomes == [answer]  # fresh now: not due


def test_a_key_in_the_environment_is_refused_with_its_reason_said_once(tmp_path: Path) -> None:
    config = _config(tmp_path, order='["env", "file"]')
    node = Node(config, {HTTP: _key("http"), AUDIT: _key("audit")})
    [answer] = node.rotator.tick()
    assert not answer["rotated"] and answer["outcome"] == "refused" and answer["source"] == "env"
    assert "in the environment, which the engine cannot write" in answer["reason"]
    assert node.rotator.tick() == [] and len(node.outcomes) == 1  # said once, not every look
    assert node.rotator.rotate(OwnedKey.HTTP, "ctl")["outcome"] == "refused"  # an operator's ask: said again
    result = check_key_ages(config, node.provider)
    assert result.status is Status.WARN and f"{HTTP}: in the environment, no rotation possible" in result.detail


def test_the_audit_key_s_rotation_retires_the_old_key_before_it_writes_the_new(tmp_path: Path) -> None:
    _put(tmp_path, HTTP, _key("http"))
    _put(tmp_path, "XORJ_AUDIT_RETIRED_HMAC_KEYS", earlier := _key("earlier"))
    audit = _put(tmp_path, AUDIT, old := _key("audit"), age_s=WEEK_S + 60)
    node = Node(_config(tmp_path, keys='["audit"]'))
    [answer] = node.rotator.tick()
    new = audit.read_text().strip()
    assert new != old and (tmp_path / "XORJ_AUDIT_RETIRED_HMAC_KEYS").read_text().strip() == f"{earlier},{old}"
    # No audit writer here (no engine): the reload holds the new key, and the rotation says so.
    assert answer["outcome"] == "failed" and "not taken by this engine" in answer["reason"]
    assert node.provider.get(AUDIT) == old


def test_a_node_taking_another_node_s_audit_key_retires_its_own_first(tmp_path: Path) -> None:
    _put(tmp_path, HTTP, _key("http"))
    _put(tmp_path, AUDIT, mine := _key("audit"))
    follower = Node(_config(tmp_path, keys='["audit"]'), may_rotate=False)
    _put(tmp_path, AUDIT, _key("theirs"))  # another node rotated the shared key (two rotated at once: a race)
    assert follower.rotator.tick() == []
    assert (tmp_path / "XORJ_AUDIT_RETIRED_HMAC_KEYS").read_text().strip() == mine  # never lost


def _mask_count(redactor: Redactor) -> int:
    """How many values the redactor masks (each learnt value is one alternative of its pattern)."""
    return 0 if redactor._values is None else len(redactor._values.pattern.split("|"))


def test_a_write_that_fails_is_retried_with_the_same_key_backing_off_and_said_once(tmp_path: Path) -> None:
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir(mode=0o700)
    old = _key("http")
    _put(secret_dir, HTTP, old, age_s=WEEK_S + 60)
    _put(secret_dir, AUDIT, _key("audit"))
    node = Node(_config(secret_dir))
    secret_dir.chmod(0o770)  # a directory the group may write to: never written to
    [answer] = node.rotator.tick()
    assert answer["outcome"] == "failed" and not answer["rotated"] and "mode 0770 refused" in answer["reason"]
    assert node.environ[HTTP] == old and node.outcomes == [answer]
    learnt = _mask_count(node.redactor)
    assert node.rotator.tick() == []  # backing off: not even tried
    for _ in range(50):  # each past its backoff: tried again, with the same key, the same failure said once
        node.clock[0] += 3600
        assert node.rotator.tick() == []
    assert node.outcomes == [answer] and _mask_count(node.redactor) == learnt
    secret_dir.chmod(0o700)
    node.clock[0] += 3600
    [done] = node.rotator.tick()
    assert done["rotated"] and done["new_fingerprint"] == answer["new_fingerprint"]  # the key the failure named
    assert node.environ[HTTP] == (secret_dir / HTTP).read_text().strip() != old


def test_retiring_a_key_appends_it_once_and_never_drops_one_seen() -> None:
    assert merge_retired(None, (), "k1") == "k1"
    assert merge_retired("k1", (), "k2") == "k1,k2"
    assert merge_retired("k1,k2", (), "k2") == "k1,k2"
    assert merge_retired("k1,k3", ("k1", "k2"), "k4") == "k1,k3,k2,k4"  # k2 dropped by another writer: back


def test_check_warns_about_an_old_key_and_not_a_fresh_one(tmp_path: Path) -> None:
    _put(tmp_path, AUDIT, _key("audit"))
    _put(tmp_path, HTTP, _key("http"), age_s=3 * WEEK_S)  # over max_age_s (two weeks by default)
    config = _config(tmp_path)
    provider, _ = open_credentials(config, {})
    result = check_key_ages(config, provider)
    assert result.status is Status.WARN and f"{HTTP} is 21.0 days old" in result.detail and AUDIT not in result.detail
    rows = {r.name: r for r in key_ages(config, provider)}
    assert rows[HTTP].state == "old" and rows[AUDIT].state == "ok" and rows[HTTP].source == "file"
    assert rows["XORJ_QUANT_API_KEY"].owner == "issued by the quantitative engine"
    _put(tmp_path, HTTP, _key("http"))
    assert check_key_ages(config, provider).status is Status.OK


@pytest.mark.parametrize("operator", [False, True])
def test_another_node_takes_the_rotated_key_at_its_next_look_with_grace_only_for_a_marked_rotation(
    tmp_path: Path, operator: bool
) -> None:
    old = _key("http")
    _put(tmp_path, HTTP, old, age_s=WEEK_S + 60)
    _put(tmp_path, AUDIT, _key("audit"))
    config = _config(tmp_path, more='[cluster]\nnode_id = "b"\n')
    rotating, follower = Node(config), Node(config, may_rotate=False)
    assert follower.rotator.tick() == []  # due, but not this node's to rotate
    assert (tmp_path / HTTP).read_text().strip() == old
    assert rotating.rotator.tick()[0]["rotated"]
    new = (tmp_path / HTTP).read_text().strip()
    assert (tmp_path / f".{HTTP}.mark").read_text().strip() == rotation_mark(old, new)
    if operator:  # after a leak, an operator writes a key of their own (the old mark stays beside it)
        _put(tmp_path, HTTP, new := _key("operator"))
    assert follower.environ[HTTP] == old
    assert follower.rotator.tick() == [] and follower.environ[HTTP] == new
    # The rotating node's mark (HMAC under the old key of the new one) proves its rotation: the
    # old key's grace; an operator's change has no mark for its key: the old key ends at once.
    assert (follower.rotator.rotated(HTTP, old, new) is None) is operator


def test_secrets_manager_keeps_a_rotation_s_mark_as_its_version_id(ministack_endpoint: str, aws_env: None) -> None:
    prefix = f"xorj-mark-{uuid.uuid4().hex[:8]}/"
    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=ministack_endpoint)
    old, new = _key("old"), _key("new")
    client.create_secret(Name=prefix + HTTP, SecretString=old)
    source = AwsSource(AwsSourceSettings(endpoint_url=ministack_endpoint, prefix=prefix))
    assert source.mark(HTTP) != rotation_mark(old, old)
    source.write(HTTP, new, rotation_mark(old, new))
    source.write(HTTP, new, rotation_mark(old, new))  # a retry of the same write: the same version
    assert source.mark(HTTP) == rotation_mark(old, new)
    client.put_secret_value(SecretId=prefix + HTTP, SecretString=_key("operator"))  # a console's change
    assert source.mark(HTTP) != rotation_mark(old, new)


RETIRED = "XORJ_AUDIT_RETIRED_HMAC_KEYS"


def test_the_new_audit_key_is_written_only_after_the_old_one_is_retired(tmp_path: Path) -> None:
    _put(tmp_path, HTTP, _key("http"))
    audit = _put(tmp_path, AUDIT, old := _key("audit"), age_s=WEEK_S + 60)
    node = Node(_config(tmp_path, keys='["audit"]'))
    write = node.provider.write

    def refuse_the_key(name: str, value: str, **kw: Any) -> Source:  # a fault: a refused write
        if name == AUDIT:
            raise NotWritable("the new key's write refused (injected)")
        return write(name, value, **kw)

    node.provider.write = refuse_the_key  # type: ignore[method-assign]
    [answer] = node.rotator.tick()
    assert answer["outcome"] == "refused" and audit.read_text().strip() == old
    assert (tmp_path / RETIRED).read_text().strip() == old  # retired before the new key's write was tried


def test_a_node_retiring_a_key_already_listed_writes_nothing(tmp_path: Path) -> None:
    _put(tmp_path, HTTP, _key("http"))
    _put(tmp_path, AUDIT, k0 := _key("k0"))
    retired = _put(tmp_path, RETIRED, f"{k0},{(k1 := _key('k1'))}")
    lagging = Node(_config(tmp_path, keys='["audit"]'), may_rotate=False)  # still on K0
    write, written = lagging.provider.write, []

    def write_seen(name: str, value: str, **kw: Any) -> Source:  # a spy on the real write
        written.append(name)
        return write(name, value, **kw)

    lagging.provider.write = write_seen  # type: ignore[method-assign]
    _put(tmp_path, AUDIT, _key("k2"))  # another node rotated K1 -> K2 meanwhile
    lagging.rotator.tick()
    assert written == [] and retired.read_text().strip() == f"{k0},{k1}"  # K0 listed: not rewritten


def test_two_nodes_retiring_at_once_lose_no_key(tmp_path: Path) -> None:
    """Node C reads the list, node A appends its key, C writes: under the file's lock A waits for
    C's write and appends after it; without it C's write would drop A's key."""
    _put(tmp_path, HTTP, _key("http"))
    _put(tmp_path, AUDIT, _key("audit"))
    _put(tmp_path, RETIRED, k0 := _key("k0"))
    config = _config(tmp_path, keys='["audit"]')
    a, c = Node(config), Node(config)
    read, started = c.provider.read, []

    def read_then_let_a_in(name: str, *, strict: bool = False) -> str | None:  # the race, made to happen
        value = read(name, strict=strict)
        if name == RETIRED and not started:
            started.append(threading.Thread(target=a.rotator._retire, args=(k1, AUDIT)))
            started[0].start()
            started[0].join(1.0)  # A runs to its end now, or waits for C's lock
        return value

    k1, k2 = _key("k1"), _key("k2")
    c.provider.read = read_then_let_a_in  # type: ignore[method-assign]
    c.rotator._retire(k2, beside=AUDIT)
    started[0].join(30)
    assert set((tmp_path / RETIRED).read_text().strip().split(",")) == {k0, k1, k2}


def test_an_unreadable_age_rotates_nothing_and_says_so(tmp_path: Path) -> None:
    _put(tmp_path, HTTP, fresh := _key("http"))
    _put(tmp_path, AUDIT, _key("audit"))
    unreachable = AwsSource(AwsSourceSettings(endpoint_url="http://127.0.0.1:9", timeout_s=0.5))
    age = unreachable.age(HTTP)  # Secrets Manager away (nothing listens on port 9)
    assert age.state is AgeState.UNREADABLE and "AWS Secrets Manager" in (age.problem or "")
    node = Node(_config(tmp_path), age_of=lambda name: age)
    assert node.rotator.tick() == [] and (tmp_path / HTTP).read_text().strip() == fresh


def test_a_halt_postpones_the_schedule_and_an_unrecorded_ctl_rotation_is_refused(tmp_path: Path) -> None:
    _put(tmp_path, HTTP, old := _key("http"), age_s=WEEK_S + 60)
    _put(tmp_path, AUDIT, _key("audit"))
    board = HaltBoard()  # STARTING: halted until a kill switch publishes
    assert "not ARMED" in (schedule_postponed(board, None) or "")
    node = Node(_config(tmp_path), postpone=lambda: schedule_postponed(board, None),
                before_ctl=ctl_rotation_recorded(lambda: None, 1.0))  # no runtime: no audit writer
    assert node.rotator.tick() == [] and (tmp_path / HTTP).read_text().strip() == old
    answer = node.rotator.rotate(OwnedKey.HTTP, "ctl")
    assert answer["outcome"] == "refused" and "the audit log cannot record it" in answer["reason"]
    assert (tmp_path / HTTP).read_text().strip() == old


def test_a_write_whose_answer_was_lost_is_taken_at_once(tmp_path: Path) -> None:
    _put(tmp_path, HTTP, old := _key("http"), age_s=WEEK_S + 60)
    _put(tmp_path, AUDIT, _key("audit"))
    node = Node(_config(tmp_path))
    write = node.provider.write

    def write_then_fail(name: str, value: str, **kw: Any) -> Source:  # a fault: lost answer
        write(name, value, **kw)
        raise SecretSourceError("PutSecretValue: read timeout (injected: the write landed)")

    node.provider.write = write_then_fail  # type: ignore[method-assign]
    [answer] = node.rotator.tick()
    new = (tmp_path / HTTP).read_text().strip()
    assert answer["rotated"] and new != old and node.environ[HTTP] == new


def test_a_reload_that_failed_after_a_good_write_is_retried_without_writing_again(tmp_path: Path) -> None:
    _put(tmp_path, HTTP, _key("http"))
    audit = _put(tmp_path, AUDIT, _key("audit"), age_s=WEEK_S + 60)
    node = Node(_config(tmp_path, keys='["audit"]'))  # no audit writer: the reload holds the new key
    [answer] = node.rotator.tick()
    assert answer["outcome"] == "failed" and "not taken by this engine" in answer["reason"]
    inode = audit.stat().st_ino
    node.clock[0] += 3600
    assert node.rotator.tick() == []  # tried again (the same failure: said once)
    assert audit.stat().st_ino == inode  # not written again


def test_stop_keeps_a_thread_still_in_a_look(tmp_path: Path) -> None:
    _put(tmp_path, HTTP, _key("http"), age_s=WEEK_S + 60)
    _put(tmp_path, AUDIT, _key("audit"))
    node, entered, release = Node(_config(tmp_path)), threading.Event(), threading.Event()
    node.rotator.may_rotate = lambda: entered.set() or release.wait(30)  # type: ignore[method-assign]
    node.rotator.start()
    assert entered.wait(30)
    assert node.rotator.stop(timeout=0.01) is False and node.rotator._thread is not None
    release.set()
    assert node.rotator.stop(timeout=30) is True and node.rotator._thread is None


def test_ctl_keys_shows_no_fingerprint_of_a_key_others_hold_and_check_warns_of_an_unknown_age(tmp_path: Path) -> None:
    environ = {HTTP: _key("http"), AUDIT: _key("audit"), "XORJ_QUANT_API_KEY": _key("quant")}
    provider, _ = open_credentials(parse_config(config_text(tmp_path)), environ)
    rows = {r.name: r for r in key_ages(parse_config(config_text(tmp_path)), provider)}
    assert rows["XORJ_QUANT_API_KEY"].source == "env" and rows["XORJ_QUANT_API_KEY"].fingerprint is None
    assert rows[HTTP].fingerprint == fingerprint(environ[HTTP]) and rows[HTTP].state == "unknown"
    result = check_key_ages(parse_config(config_text(tmp_path)), provider)
    assert result.status is Status.WARN and f"{HTTP}: age unknown" in result.detail


def config_text(secret_dir: Path) -> str:
    """Rotation off, the keys in the environment: nothing rotates, nothing dates them."""
    return f'[strategy]\nurl = "http://127.0.0.1:9"\n[secrets]\norder = ["env", "file"]\n[secrets.file]\ndir = "{secret_dir}"\n'


def test_a_failed_rotation_is_not_retried_over_a_key_taken_from_elsewhere(tmp_path: Path) -> None:
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir(mode=0o700)
    _put(secret_dir, HTTP, _key("http"), age_s=WEEK_S + 60)
    _put(secret_dir, AUDIT, _key("audit"))
    node = Node(_config(secret_dir))
    secret_dir.chmod(0o770)
    assert node.rotator.tick()[0]["outcome"] == "failed"
    secret_dir.chmod(0o700)
    _put(secret_dir, HTTP, theirs := _key("theirs"))  # another node (or an operator) wrote a fresh key
    node.clock[0] += 3600
    assert node.rotator.tick() == [] and node.environ[HTTP] == theirs == (secret_dir / HTTP).read_text().strip()


def test_a_key_s_state_from_its_source_and_age() -> None:
    rule = lambda source, age, **kw: key_state(source, age, **{"owned": True, "scheduled": True,  # noqa: E731
                                                                "max_age_s": 100.0, **kw})
    assert rule(None, None) == "missing"
    assert rule(Source.ENV, SecretAge.undated()) == "not rotatable"
    assert rule(Source.ENV, SecretAge.undated(), scheduled=False) == "unknown"
    assert rule(Source.AWS, SecretAge.unreadable("throttled")) == "unreadable"
    assert rule(Source.FILE, SecretAge.dated(101.0)) == "old" and rule(Source.FILE, SecretAge.dated(99.0)) == "ok"
    assert rule(Source.FILE, SecretAge.dated(101.0), owned=False) == "ok"  # others' keys are never "old"
