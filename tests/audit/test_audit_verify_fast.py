"""verify's hot loop (``link_rows``: ``entry_bytes`` and ``chain_step`` inlined) accepts exactly
the chains the reference functions define, and catches an edit of any column of any entry."""

from __future__ import annotations

import json
import random

import pytest

from xorj_actors.audit import GENESIS_HASH, chain_hash, chain_hmac, entry_bytes, verify_rows

KEY = b"a-test-key-of-at-least-thirty-two-bytes!"

#: Text that JSON must escape, or that only looks as if it were escaped.
TRICKY = ['a"b', "a\\\"b", "back\\slash", "tab\tnl\n", "\x00\x01\x1f", "ünïcode", "\u2028", "", " ", "null",
          "\x7f", "é\"\\"]


def reference_rows(n: int, seed: int) -> list[tuple]:
    """``n`` entries written with nothing but the reference :func:`entry_bytes`, :func:`chain_hash`
    and :func:`chain_hmac`, their text fields drawn from :data:`TRICKY`."""
    rnd = random.Random(seed)
    rows, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        eid, ts, etype, sev, actor = (rnd.choice(TRICKY) + str(seq) for _ in range(5))
        corr = None if rnd.random() < 0.3 else rnd.choice(TRICKY)
        details = json.dumps({"memo": rnd.choice(TRICKY), "n": seq}, sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False)
        h = chain_hash(prev, entry_bytes(eid, seq, ts, etype, sev, actor, corr, details))
        rows.append((eid, seq, ts, etype, sev, actor, corr, details, prev, h, chain_hmac(KEY, h)))
        prev = h
    return rows


def test_reference_chains_verify():
    rows = reference_rows(300, 1)
    result = verify_rows(rows, KEY)
    assert result.ok and result.entries == 300 and result.head_hash == rows[-1][9]


EDITS = {
    0: lambda v: v + "x",
    1: lambda v: v + 1,
    2: lambda v: v.replace('"', '\\"') if '"' in v else v + "\t",
    3: lambda v: v[:-1],
    4: lambda v: "\\" + v,
    5: lambda v: v.replace("\\", "") if "\\" in v else v + '"',
    6: lambda v: "" if v is None else None,
    7: lambda v: v.replace('":', '": '),
    8: lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),
    9: lambda v: v.upper() if v != v.upper() else v[:-1] + "0",
    10: lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),
}


@pytest.mark.parametrize("column", sorted(EDITS))
def test_an_edit_of_any_column_is_caught_at_its_entry(column):
    rows = reference_rows(40, 2)
    for at in (0, 17, 39):
        edited = list(rows)
        row = list(edited[at])
        row[column] = EDITS[column](row[column])
        assert row[column] != edited[at][column]
        edited[at] = tuple(row)
        result = verify_rows(edited, KEY)
        assert not result.ok and result.broken_sequence == at + 1 and result.entries == at, result.describe()


def test_escaped_look_alike_is_not_the_original():
    """``a\\"b`` stored where ``a"b`` was written embeds as the same characters if it were pasted
    unescaped: verify must escape it, so the hash differs."""
    rows = reference_rows(3, 3)
    row = list(rows[1])
    row[5] = 'x"y'
    h = chain_hash(row[8], entry_bytes(*row[:8]))
    row[9], row[10] = h, chain_hmac(KEY, h)
    rows = [rows[0], tuple(row)]
    assert verify_rows(rows, KEY).ok
    forged = list(row)
    forged[5] = 'x\\"y'
    assert not verify_rows([rows[0], tuple(forged)], KEY).ok
