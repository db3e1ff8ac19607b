"""Strict JSON: what the operator surfaces refuse (see xorj_actors.strict_json)."""

from __future__ import annotations

import json

import pytest

from xorj_actors.strict_json import MAX_DEPTH, JSONRefused, loads


def test_plain_requests_parse_as_json_would() -> None:
    text = '{"id": 1, "cmd": "halt", "args": {"reason": "a [quoted] {brace}", "x": [1.5, -2, null, true]}}'
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"cmd":"help","cmd":"halt"}', "duplicate key 'cmd'"),
        ('{"id":NaN}', "NaN is not a JSON value"),
        ('{"id":-Infinity}', "-Infinity is not a JSON value"),
        ('{"id":1e999}', "1e999 is not a finite number"),
        ("[" * 30_000, f"nested deeper than {MAX_DEPTH} levels"),
        ('{"id":' + "9" * 5_000 + "}", "integer of 5000 digits"),
        ("{", "not valid JSON"),
    ],
)
def test_what_json_loads_accepts_or_crashes_on_is_refused_by_name(text: str, problem: str) -> None:
    with pytest.raises(JSONRefused, match=problem.replace("[", r"\[")):
        loads(text)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert loads(json.dumps({"reason": "[" * 1000 + '\\"'})) == {"reason": "[" * 1000 + '\\"'}


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(JSONRefused, match="not UTF-8"):
        loads(b'{"id":"\xff"}')


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * MAX_DEPTH + "]" * MAX_DEPTH, False),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), True),
        ("[{}]" * 100, False),
        ('["\\"[[[", ' * 40 + "0" + "]" * 40, True),  # escaped quotes do not end a string
        ('["é[", ' + '"[\\\\"]', False),  # a backslash escaped: the string ends at the next quote
        ("]" * 40 + "[" * 40, False),  # unbalanced: malformed, not deep
        ("{[}" + "[" * MAX_DEPTH, True),  # mismatched brackets still count as they come
        ('"[' + "[" * 40, True),  # an unterminated string: its brackets count
    ],
)
def test_nesting_is_counted_as_the_brackets_come_outside_strings(text: str, deep: bool) -> None:
    for data in (text, text.encode()):
        try:
            loads(data)
        except JSONRefused as exc:
            assert (exc.problem.value == "too_deep") == deep, exc
        else:
            assert not deep


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ('{"id":' + "9" * 41 + "}", True),
        ('{"id":-' + "9" * 41 + "}", True),
        ("[" + "1" * 41 + "]", True),
        ('{"id":' + "9" * 40 + "}", False),
        ('{"id":-' + "9" * 40 + "}", False),
        ('{"x":0.' + "1" * 60 + "}", False),  # a fraction's digits are not an integer
        ('{"x":1' + "0" * 60 + ".5}", False),  # nor a float's integer part
        ('{"x":1e-' + "0" * 60 + "1}", False),  # nor an exponent
        ('{"x":1E+' + "0" * 60 + "1}", False),
        ('{"x":"' + "9" * 100 + '"}', False),  # nor the digits of a string
        ('{"x":"\\"' + "9" * 100 + '"}', False),
        ('["' + "1" * 30 + '"' + "2" * 30 + "]", False),  # a string keeps its neighbours apart: malformed
    ],
)
def test_long_integers_are_refused_before_parsing_and_only_integers(text: str, refused: bool) -> None:
    for data in (text, text.encode()):
        try:
            value = loads(data)
        except JSONRefused as exc:
            assert (exc.problem.value == "too_large") == refused, exc
        else:
            assert not refused
            assert value == json.loads(text)


def test_the_integer_limit_is_the_callers() -> None:
    assert loads("[" + "9" * 50 + "]", max_int_digits=50) == [int("9" * 50)]
    with pytest.raises(JSONRefused, match="integer of 6 digits: the limit is 5"):
        loads("[123456]", max_int_digits=5)
