"""Anchoring to S3 Object Lock (ministack, a real server): truncation and whole rewrites are caught."""

from __future__ import annotations

import dataclasses
import time

import pytest
from botocore.exceptions import ClientError

from tests.audit.test_audit_verify import fill, rewrite_with_key, run_cli, swap, write_config
from tests.terminal import frames, stderr_on_a_terminal
from xorj_actors.audit import (
    AnchorError,
    Anchorer,
    AuditLog,
    chain_hash,
    chain_hmac,
    entry_bytes,
    list_anchors,
    open_store,
    read_segment,
    s3_client,
    select_entries,
    verify_store,
)

pytestmark = pytest.mark.ministack


@pytest.fixture
def anchored(audit_settings, anchor_settings, data_dir, audit_key):
    """A log of 10 entries, anchored; yields (entries, store, client)."""
    entries = fill(audit_settings, data_dir)
    store = open_store(audit_settings, data_dir, create=False)
    client = s3_client(anchor_settings)
    head = Anchorer(anchor_settings, store, audit_key, client).anchor_now()
    assert head is not None and (head.sequence, head.hash, head.hmac) == (10, entries[-1].hash, entries[-1].hmac)
    yield entries, store, client
    store.close()


def test_anchor_archives_head_and_segment_and_verify_matches(anchored, anchor_settings, audit_settings, data_dir,
                                                             audit_key):
    entries, store, client = anchored
    anchors = list_anchors(client, anchor_settings)
    assert [a.sequence for a in anchors] == [10]
    assert read_segment(client, anchor_settings, anchors[0]) == entries
    result = verify_store(store, audit_key, anchors)
    assert result.ok and result.anchors_checked == 1
    # Nothing new: no new object. New entries: the next segment starts after the last anchor.
    anchorer = Anchorer(anchor_settings, store, audit_key, client)
    assert anchorer.anchor_now() is None
    more = fill(audit_settings, data_dir, 3)
    assert anchorer.anchor_now().sequence == 13
    anchors = list_anchors(client, anchor_settings)
    assert read_segment(client, anchor_settings, anchors[1]) == more
    assert verify_store(store, audit_key, anchors).anchors_checked == 2


def test_truncated_tail_is_caught_only_with_anchors(anchored, anchor_settings, audit_key, raw_sql):
    _, store, client = anchored
    raw_sql("DELETE FROM {t} WHERE sequence > 7")
    assert verify_store(store, audit_key).ok  # the chain that is left is intact
    result = verify_store(store, audit_key, list_anchors(client, anchor_settings))
    assert not result.ok and result.broken_sequence == 8
    assert "truncated tail: the log ends at entry 7 but entry 10 was anchored" in result.reason


def test_whole_rewrite_with_a_stolen_key_is_caught_at_the_first_rewritten_entry(anchored, anchor_settings, audit_key,
                                                                               raw_sql):
    entries, store, client = anchored
    # The attacker has the key: rewrites entry 3 and re-chains everything after it.
    prev = entries[1].hash
    for e in entries[2:]:
        details = '{"i":"rewritten"}' if e.sequence == 3 else e.details
        h = chain_hash(prev, entry_bytes(e.id, e.sequence, e.timestamp, e.event_type, e.severity, e.actor,
                                         e.correlation_id, details))
        raw_sql("UPDATE {t} SET details = ?, prev_hash = ?, hash = ?, hmac = ? WHERE sequence = ?",
                details, prev, h, chain_hmac(audit_key, h), e.sequence)
        prev = h
    assert verify_store(store, audit_key).ok  # locally perfect
    anchors = list_anchors(client, anchor_settings)
    # Heads alone only see that entry 10 (the anchored head) differs ...
    coarse = verify_store(store, audit_key, anchors)
    assert not coarse.ok and coarse.broken_sequence == 10
    assert "log rewritten: entry 10 differs from the anchored head" in coarse.reason
    # ... the anchored segment, compared entry by entry, names the entry that was rewritten.
    result = verify_store(store, audit_key, anchors, segments=lambda a: read_segment(client, anchor_settings, a))
    assert not result.ok and result.broken_sequence == 3 and result.entries == 2
    assert "log rewritten with the audit key: entry 3 differs from its anchored copy (details changed" in result.reason


def _verify_with_segments(store, key, settings):
    client = s3_client(settings)
    return verify_store(store, key, list_anchors(client, settings),
                        segments=lambda a: read_segment(client, settings, a))


@pytest.mark.parametrize(
    ("order", "broken", "reason"),
    [
        # 1-based original entries, in their new order; the chain is recomputed with the key.
        ([1, 2, 3, 4, 8, 6, 7, 5, 9, 10], 5, "rows swapped: entries 5 and 8 were exchanged and the chain recomputed"),
        ([1, 15, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 2, 16], 2, "rows swapped: entries 2 and 15 were exchanged"),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 10, 12, 13], 10, "rows swapped: entries 10 and 11 were exchanged"),
        ([1, 2, 3, 5, 6, 7, 8, 9, 10], 4, "deleted row: anchored entries 4..4 are missing, later rows renumbered"),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13], 12, "deleted row: anchored entries 12..12 are missing"),
        ([1, 2, 3, 7, 4, 5, 6, 8, 9, 10], 4, "rows reordered: entry 4 holds the anchored entry 7"),
    ],
    ids=["swap-5-8", "swap-2-15-three-segments-apart", "swap-across-the-anchor-at-10", "delete-4",
         "delete-12-in-the-second-segment", "move-7-to-4"],
)
def test_a_rewrite_with_the_key_is_named_at_its_first_entry(anchored, anchor_settings, audit_settings, data_dir,
                                                            audit_key, raw_sql, order, broken, reason):
    entries, store, client = anchored
    anchorer = Anchorer(anchor_settings, store, audit_key, client)
    for _ in range(2):  # 11..13 and 14..16, anchored as a second and a third segment
        entries = entries + fill(audit_settings, data_dir, 3)
        anchorer.anchor_now()
    rewrite_with_key(raw_sql, audit_key, [entries[i - 1] for i in order])
    assert verify_store(store, audit_key).ok  # locally perfect
    result = _verify_with_segments(store, audit_key, anchor_settings)
    assert (result.ok, result.broken_sequence, result.entries) == (False, broken, broken - 1)
    assert reason in result.reason


def test_swaps_across_an_anchor_without_the_key_are_named_as_swapped(anchored, anchor_settings, audit_settings,
                                                                     data_dir, audit_key, raw_sql):
    """Rows more than 8 apart used to be called "edited"; across an anchor as well as within a segment."""
    entries, store, client = anchored
    fill(audit_settings, data_dir, 20)
    Anchorer(anchor_settings, store, audit_key, client).anchor_now()  # anchors at 10 and 30
    for a, b in ((10, 11), (5, 25), (10, 30)):
        swap(raw_sql, a, b)
        result = _verify_with_segments(store, audit_key, anchor_settings)
        assert result.broken_sequence == a and f"rows swapped: entries {a} and {b} were exchanged" in result.reason
        swap(raw_sql, a, b)
    assert _verify_with_segments(store, audit_key, anchor_settings).verdict == "OK"


def test_verify_says_how_far_the_anchors_reach(anchored, anchor_settings, audit_settings, data_dir, audit_key,
                                               tmp_path, capsys):
    entries, store, client = anchored
    fill(audit_settings, data_dir, 5)  # 11..15: not anchored yet
    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    assert run_cli(["verify", *common]) == 3
    out = capsys.readouterr().out
    assert out.startswith("UNANCHORED: 15 entries")
    assert f"1 anchors matched, the last reaches entry 10 ({entries[-1].timestamp})" in out
    assert "entries 11..15 (5) are not anchored" in out and "rewrite with the audit key cannot be detected" in out
    assert run_cli(["anchor", *common]) == 0
    capsys.readouterr()
    assert run_cli(["verify", *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 15 entries") and "2 anchors matched, the last reaches entry 15" in out
    assert "every entry is anchored" in out


def test_object_lock_refuses_deleting_or_shortening_an_anchor(anchored, anchor_settings):
    _, _, client = anchored
    key = list_anchors(client, anchor_settings)[0].source
    head = client.head_object(Bucket=anchor_settings.bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError) as exc:
        client.delete_object(Bucket=anchor_settings.bucket, Key=key, VersionId=head["VersionId"])
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError):
        client.put_object_retention(
            Bucket=anchor_settings.bucket, Key=key, VersionId=head["VersionId"],
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": head["ObjectLockRetainUntilDate"].replace(year=2000)},
        )
    body = client.get_object(Bucket=anchor_settings.bucket, Key=key, VersionId=head["VersionId"])["Body"].read()
    assert body.startswith(b'{"chain": "default", "from_sequence": 1')


def test_anchorer_refuses_to_archive_a_broken_chain(audit_settings, anchor_settings, data_dir, audit_key, raw_sql):
    fill(audit_settings, data_dir)
    raw_sql("""UPDATE {t} SET actor = 'someone-else' WHERE sequence = 4""")
    store = open_store(audit_settings, data_dir, create=False)
    client = s3_client(anchor_settings)
    try:
        with pytest.raises(AnchorError, match="refusing to anchor a broken chain: entry 4"):
            Anchorer(anchor_settings, store, audit_key, client).anchor_now()
    finally:
        store.close()
    assert list_anchors(client, anchor_settings) == []


def test_anchorer_thread_anchors_periodically(anchor_settings, data_dir, audit_key):
    from xorj_actors.audit import AuditSettings

    settings = AuditSettings(anchor=anchor_settings)
    log = AuditLog.open(settings, data_dir, "production")
    anchorer = Anchorer(anchor_settings, open_store(settings, data_dir), audit_key)
    anchorer.start()
    try:
        last = [log.append("SYSTEM_EVENT", actor="a", details={"i": i}) for i in range(5)][-1]
        client = s3_client(anchor_settings)
        deadline = time.monotonic() + 10
        while not (anchors := list_anchors(client, anchor_settings)) or anchors[-1].sequence < last.sequence:
            assert time.monotonic() < deadline, "no anchor within 10 s"
            time.sleep(0.05)
        assert anchors[-1].hash == last.hash
        assert anchors[0].source.startswith(anchor_settings.prefix)
    finally:
        anchorer.stop()
        log.close()


def _anchored_config(audit_settings, anchor_settings, tmp_path):
    config = write_config(audit_settings, tmp_path / "c.toml")
    a = anchor_settings
    config.write_text(config.read_text() + "\n".join([
        "[audit.anchor]", "enabled = true", f'endpoint_url = "{a.endpoint_url}"', f'bucket = "{a.bucket}"',
        f'prefix = "{a.prefix}"', "retention_days = 1", "",
    ]))
    return config


def test_cli_anchor_then_verify_against_anchors(audit_settings, anchor_settings, data_dir, audit_key, raw_sql,
                                                tmp_path, capsys):
    fill(audit_settings, data_dir)
    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    assert run_cli(["anchor", *common]) == 0
    assert "anchored up to entry 10" in capsys.readouterr().out
    raw_sql("DELETE FROM {t} WHERE sequence = 10")
    assert run_cli(["verify", *common]) == 1
    assert "BROKEN at entry 10: truncated tail" in capsys.readouterr().err
    assert run_cli(["verify", "--no-anchors", *common]) == 3  # intact, but the anchors were not asked


def test_an_empty_log_writes_no_anchor(anchor_settings, data_dir, audit_key):
    from xorj_actors.audit import AuditSettings

    settings = dataclasses.replace(AuditSettings(), anchor=anchor_settings)
    store = open_store(settings, data_dir)
    try:
        assert Anchorer(anchor_settings, store, audit_key).anchor_now() is None
    finally:
        store.close()
    assert list_anchors(s3_client(anchor_settings), anchor_settings) == []


def test_cli_verify_with_unreachable_anchors_is_a_clear_error(data_dir, audit_key, aws_env, tmp_path, capsys):
    from tests.conftest import free_port
    from xorj_actors.audit import AuditSettings

    fill(AuditSettings(), data_dir, 2)
    config = tmp_path / "c.toml"
    config.write_text(
        '[engine]\nenvironment = "production"\n[execution]\nenabled = false\n[audit.anchor]\nenabled = true\n'
        f'endpoint_url = "http://127.0.0.1:{free_port()}"\n'  # nothing listens there
    )
    assert run_cli(["verify", "--config", str(config), "--data-dir", str(data_dir)]) == 2
    assert "cannot list anchors" in capsys.readouterr().err


def test_restore_from_an_old_backup_and_recover_from_the_anchors(
    audit_settings, anchor_settings, data_dir, audit_key, raw_sql, tmp_path, capsys, monkeypatch
):
    """The documented restore procedure, end to end through the CLI (recover on a terminal: its bars)."""
    config = _anchored_config(audit_settings, anchor_settings, tmp_path)
    a = anchor_settings
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    entries = fill(audit_settings, data_dir)
    assert run_cli(["anchor", *common]) == 0
    entries += fill(audit_settings, data_dir, 5)
    assert run_cli(["anchor", *common]) == 0
    raw_sql("DELETE FROM {t} WHERE sequence > 7")  # the backup ended at entry 7
    capsys.readouterr()
    assert run_cli(["verify", *common]) == 1
    assert "truncated tail: the log ends at entry 7 but entry 15 was anchored" in capsys.readouterr().err
    with stderr_on_a_terminal(monkeypatch) as drawn:
        assert run_cli(["recover", *common]) == 0
    assert "restored 8 entries" in capsys.readouterr().out
    assert {(done, total) for done, total, _ in frames(drawn[0])} >= {(7, 7), (8, 8)}  # the local log; restored
    assert "recover local log" in drawn[0] and "recover from anchors" in drawn[0]
    assert run_cli(["verify", *common]) == 0
    out = capsys.readouterr().out
    assert "OK: 15 entries" in out and "2 anchors matched" in out
    store = open_store(audit_settings, data_dir, create=False)
    try:
        result = verify_store(store, audit_key, list_anchors(s3_client(a), a))
        rows = [e.row() for e in select_entries(store)]
    finally:
        store.close()
    assert result.ok and result.entries == 15 and result.anchors_checked == 2
    assert rows == [e.row() for e in entries]
    assert run_cli(["recover", *common]) == 0  # nothing missing: a no-op
    assert "restored 0 entries" in capsys.readouterr().out


def test_recover_refuses_a_tampered_local_log(audit_settings, anchor_settings, data_dir, audit_key, raw_sql):
    from xorj_actors.audit import recover_from_anchors

    fill(audit_settings, data_dir)
    store = open_store(audit_settings, data_dir, create=False)
    client = s3_client(anchor_settings)
    try:
        Anchorer(anchor_settings, store, audit_key, client).anchor_now()
        raw_sql("DELETE FROM {t} WHERE sequence > 5")
        raw_sql("UPDATE {t} SET actor = 'x' WHERE sequence = 2")
        with pytest.raises(AnchorError, match="the local log does not verify"):
            recover_from_anchors(store, audit_key, client, anchor_settings)
        assert raw_sql("SELECT COUNT(*) FROM {t}") == [(5,)]
    finally:
        store.close()


def test_the_engine_anchors_its_log_when_anchoring_is_enabled(engine_factory, anchor_settings, audit_key, tmp_path,
                                                              capsys):
    """[audit.anchor] enabled used to be read by the CLI only: a running engine never anchored."""
    a = anchor_settings
    section = (f'[audit.anchor]\nenabled = true\nendpoint_url = "{a.endpoint_url}"\nbucket = "{a.bucket}"\n'
               'interval_s = 0.2\nretention_days = 1\n')
    engine = engine_factory(vaults=1, extra=section)
    client = s3_client(a)
    deadline = time.monotonic() + 20
    while not list_anchors(client, a):
        assert time.monotonic() < deadline, "the engine wrote no anchor within 20 s"
        time.sleep(0.1)
    assert engine.stop(timeout=10) == []
    config = tmp_path / "c.toml"
    config.write_text(section)
    capsys.readouterr()
    assert run_cli(["verify", "--config", str(config), "--data-dir", str(engine.data_dir)]) == 0
    assert "every entry is anchored" in capsys.readouterr().out  # the last anchor was written at stop


def test_parallel_verify_reports_how_far_the_anchors_reach(anchored, anchor_settings, audit_key, monkeypatch):
    from xorj_actors.audit import _verify

    entries, store, client = anchored
    monkeypatch.setattr(_verify, "PARALLEL_MIN_ENTRIES", 1)
    result = verify_store(store, audit_key, list_anchors(client, anchor_settings), workers=2)
    assert result.verdict == "OK" and (result.anchored_sequence, result.anchored_timestamp) == (10, entries[-1].timestamp)


def test_recover_with_the_local_log_ahead_of_the_anchors_reports_nothing_missing(
    audit_settings, anchor_settings, data_dir, audit_key
):
    from xorj_actors.audit import recover_from_anchors

    fill(audit_settings, data_dir)
    store = open_store(audit_settings, data_dir, create=False)
    client = s3_client(anchor_settings)
    try:
        Anchorer(anchor_settings, store, audit_key, client).anchor_now()
        store.close()
        fill(audit_settings, data_dir, 5)  # written since the last anchor
        store = open_store(audit_settings, data_dir, create=False)
        steps: list[tuple[str, int, int]] = []
        recover_from_anchors(store, audit_key, client, anchor_settings, progress=lambda *step: steps.append(step))
        assert ("from anchors", 0, 0) in steps  # not a negative count ("0/-5")
        assert all(done >= 0 and total >= 0 for _, done, total in steps)
    finally:
        store.close()


def test_an_idle_engines_alive_entries_write_no_anchor_of_their_own(anchored, anchor_settings, audit_settings,
                                                                    data_dir, audit_key):
    """One COMPLIANCE-locked object per ``interval_s`` (0.2 s here) for liveness alone would pile
    up for years: the periodic anchor leaves ``alive`` entries for the next other entry (or a
    day, or the anchor at stop), and archives them with it."""
    from datetime import datetime, timedelta, timezone

    from xorj_actors.audit import KILL_SWITCH_ALIVE_ACTOR
    from xorj_actors.audit._anchor import ALIVE_ONLY_MAX_AGE, _alive_only

    _, store, client = anchored

    def append(n: int, actor: str | None = None) -> list:
        log = AuditLog.open(audit_settings, data_dir, "production")
        try:
            return [log.append("SYSTEM_EVENT", actor=actor or KILL_SWITCH_ALIVE_ACTOR, details={"what": "alive"})
                    for _ in range(n)]
        finally:
            log.close()

    def heads() -> list[int]:
        return [a.sequence for a in list_anchors(client, anchor_settings)]

    anchorer = Anchorer(anchor_settings, open_store(audit_settings, data_dir, create=False), audit_key, client)
    anchorer.start()
    try:
        alive = append(3)
        time.sleep(1.0)  # five rounds of the loop
        assert heads() == [10]
        more = fill(audit_settings, data_dir, 1)
        deadline = time.monotonic() + 10
        while heads() == [10] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heads() == [10, 14]  # the alive entries went with the next real one
        assert read_segment(client, anchor_settings, list_anchors(client, anchor_settings)[1]) == [*alive, *more]
        last = append(2)
        time.sleep(1.0)
        assert heads() == [10, 14]
    finally:
        anchorer.stop()
    assert heads() == [10, 14, 16]  # the anchor at stop takes them: a stopped engine verifies OK
    assert verify_store(store, audit_key, list_anchors(client, anchor_settings)).ok
    # Left alone no longer than a day: an idle node still anchors once a day.
    rows = [dataclasses.astuple(e) for e in last]
    written = datetime.strptime(last[0].timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert _alive_only(rows, written + ALIVE_ONLY_MAX_AGE - timedelta(seconds=1))
    assert not _alive_only(rows, written + ALIVE_ONLY_MAX_AGE)
    assert not _alive_only([*rows, dataclasses.astuple(more[0])], written)


def test_anchor_soon_anchors_at_once_not_at_the_next_interval(anchored, anchor_settings, audit_settings, data_dir,
                                                              audit_key):
    """After a key rotation the writer wakes the anchorer: the old epoch's tail is safe from the
    retired key's holder only once anchored, which must not wait an ``interval_s`` (an hour here)."""
    _, store, client = anchored
    hourly = dataclasses.replace(anchor_settings, interval_s=3600.0)
    anchorer = Anchorer(hourly, open_store(audit_settings, data_dir, create=False), audit_key, client)
    anchorer.start()
    try:
        fill(audit_settings, data_dir, 2)
        time.sleep(0.5)
        assert [a.sequence for a in list_anchors(client, anchor_settings)] == [10]  # not woken: nothing yet
        anchorer.anchor_soon()
        deadline = time.monotonic() + 10
        while len(list_anchors(client, anchor_settings)) == 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [a.sequence for a in list_anchors(client, anchor_settings)] == [10, 12]
    finally:
        anchorer.stop()
