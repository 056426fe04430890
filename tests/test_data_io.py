"""Malformed data files fail with the file, line and field named."""

import json

import pytest

from tasks.data_io import DataError, list_of_str, one_of, read_jsonl

SPEC = {"id": str, "answer": one_of("A", "B", "C", "D"), "outputs": list_of_str, "n": int}
GOOD = {"id": "x", "answer": "A", "outputs": ["1"], "n": 3}


def _write(tmp_path, lines, name="d.jsonl"):
    p = tmp_path / name
    p.write_bytes(b"".join((l if isinstance(l, bytes) else l.encode()) + b"\n" for l in lines))
    return p


def test_good_file_reads(tmp_path):
    assert read_jsonl(_write(tmp_path, [json.dumps(GOOD)]), SPEC, "id") == [GOOD]


@pytest.mark.parametrize("line,needle", [
    ('{"id": "x", "answer": "A"', "line 2: invalid JSON"),
    ('{"id": "x, "answer": "A"}', "line 2: invalid JSON (Expecting ',' delimiter at column 13)"),
    # Python's messages for these end in "at": the word is not doubled
    ('{"id": "x', "line 2: invalid JSON (Invalid control character at column 10)"),
    (json.dumps({**GOOD, "id": "y", "answer": "E"}), "line 2, field 'answer': expected one of A, B, C, D, got 'E'"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "outputs"} | {"id": "y"}), "line 2, field 'outputs': missing"),
    (json.dumps({**GOOD, "id": "y", "n": "3"}), "line 2, field 'n': expected int, got str"),
    (json.dumps({**GOOD, "id": "y", "n": True}), "line 2, field 'n': expected int, got bool"),
    (json.dumps({**GOOD, "id": "y", "outputs": "1"}), "line 2, field 'outputs': expected a list of strings"),
    (json.dumps(GOOD), "line 2, field 'id': duplicate id 'x' (first on line 1)"),
    ("[1, 2]", "line 2: expected a JSON object"),
    (b'{"id": "\xff"}', "line 2: not UTF-8"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, line, needle):
    p = _write(tmp_path, [json.dumps(GOOD), line])
    with pytest.raises(DataError) as e:
        read_jsonl(p, SPEC, "id")
    assert str(p) in str(e.value) and needle in str(e.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="no rows"):
        read_jsonl(_write(tmp_path, [""]), SPEC)
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "nope.jsonl", SPEC)


def test_huge_line_is_refused(tmp_path):
    p = _write(tmp_path, [json.dumps({**GOOD, "id": "z" * 5000})])
    with pytest.raises(DataError, match="over the 1000-byte limit"):
        read_jsonl(p, SPEC, max_line_bytes=1000)


def test_json_list_files_are_validated_like_jsonl(tmp_path):
    from tasks.data_io import read_records

    p = tmp_path / "d.json"
    p.write_text(json.dumps([GOOD, {**GOOD, "id": "y"}]))
    assert [r["id"] for r in read_records(p, SPEC, "id")] == ["x", "y"]
    p.write_text(json.dumps([GOOD, GOOD]))
    with pytest.raises(DataError, match=r"line 2, field 'id': duplicate id 'x' \(first on line 1\)"):
        read_records(p, SPEC, "id")
    p.write_text('[{"id": "x}]')
    with pytest.raises(DataError, match=r"line 1: invalid JSON \(Unterminated string starting at column 9\)$"):
        read_records(p, SPEC)
    p.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DataError, match="expected a non-empty JSON list"):
        read_records(p, SPEC)
    jl = tmp_path / "d.jsonl"
    jl.write_text(json.dumps(GOOD) + "\n")
    assert read_records(jl, SPEC) == [GOOD]
