"""Reading and validating benchmark data files (every error names the file, line and field), and
writing files atomically (a reader or a crash never sees half a file).

Used by every benchmark loader (and the trainer's data) so a malformed row fails the same way
everywhere: `DataError: data/x.jsonl line 7, field 'answer': expected one of A, B, C, D, got 'E'`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from tasks.errors import UserError


class DataError(UserError, ValueError):
    """A data file is malformed. The message says where and what was expected."""

    def __init__(self, path, line: int | None, field: str | None, message: str):
        where = str(path) + (f" line {line}" if line is not None else "")
        where += f", field '{field}'" if field else ""
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = str(path), line, field


# A field spec: a type (or tuple of types), or a callable check returning an error text or None.
FieldSpec = type | tuple | Callable[[Any], str | None]


def _type_name(t) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


def validate_row(row: Any, spec: dict[str, FieldSpec], path, line: int | None) -> dict:
    if not isinstance(row, dict):
        raise DataError(path, line, None, f"expected a JSON object, got {type(row).__name__}")
    for name, check in spec.items():
        if name not in row:
            raise DataError(path, line, name, f"missing (required fields: {', '.join(spec)})")
        value = row[name]
        if isinstance(check, (type, tuple)):
            if isinstance(value, bool) and check in (int, float):
                ok = False
            else:
                ok = isinstance(value, check)
            if not ok:
                raise DataError(path, line, name, f"expected {_type_name(check)}, got {type(value).__name__} {str(value)[:60]!r}")
        else:
            problem = check(value)
            if problem:
                raise DataError(path, line, name, problem)
    return row


def list_of_str(value) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"expected a list of strings, got {str(value)[:60]!r}"
    return None


def one_of(*allowed) -> Callable[[Any], str | None]:
    def check(value):
        if value not in allowed:
            return f"expected one of {', '.join(map(str, allowed))}, got {value!r}"
        return None
    return check


def json_error_text(e: json.JSONDecodeError) -> str:
    """What is wrong and where on the line. Several of Python's messages end in "at" (it prints
    them as "Unterminated string starting at: line 1 column 9"), so that word is not repeated."""
    return f"{e.msg.removesuffix(' at')} at column {e.colno}"


class _UniqueIds:
    """Remembers where each id was first seen; a repeat is a DataError naming both places."""

    def __init__(self, path, id_field: str | None):
        self.path, self.id_field, self.seen = path, id_field, {}

    def add(self, row: dict, line: int) -> None:
        if self.id_field is None:
            return
        key = row.get(self.id_field)
        if key in self.seen:
            raise DataError(self.path, line, self.id_field, f"duplicate id {key!r} (first on line {self.seen[key]})")
        self.seen[key] = line


def read_jsonl(path: str | os.PathLike, spec: dict[str, FieldSpec], id_field: str | None = None,
               max_line_bytes: int = 64 << 20) -> list[dict]:
    """Read a JSONL file, validating each row against `spec`; duplicate ids are errors."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, None, None, "file not found")
    rows, ids = [], _UniqueIds(p, id_field)
    with open(p, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if len(raw) > max_line_bytes:
                raise DataError(p, line_no, None, f"line is {len(raw)} bytes, over the {max_line_bytes}-byte limit")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(p, line_no, None, f"not UTF-8 ({e.reason} at byte {e.start})") from e
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(p, line_no, None, f"invalid JSON ({json_error_text(e)})") from e
            validate_row(row, spec, p, line_no)
            ids.add(row, line_no)
            rows.append(row)
    if not rows:
        raise DataError(p, None, None, "no rows (the file is empty)")
    return rows


def read_records(path: str | os.PathLike, spec: dict[str, FieldSpec], id_field: str | None = None) -> list[dict]:
    """A JSON list of objects (`.json`, or any file starting with `[`) or JSONL, validated alike.

    In a JSON list, "line" in errors is the item's 1-based position.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            is_list = p.suffix == ".json" or f.read(4096).lstrip().startswith(b"[")
    except FileNotFoundError as e:
        raise DataError(p, None, None, "file not found") from e
    if not is_list:
        return read_jsonl(p, spec, id_field=id_field)
    try:
        rows = json.loads(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(p, None, None, f"not UTF-8 ({e.reason} at byte {e.start})") from e
    except json.JSONDecodeError as e:
        raise DataError(p, e.lineno, None, f"invalid JSON ({json_error_text(e)})") from e
    if not isinstance(rows, list) or not rows:
        raise DataError(p, None, None, "expected a non-empty JSON list of items")
    ids = _UniqueIds(p, id_field)
    for i, row in enumerate(rows, start=1):
        validate_row(row, spec, p, i)
        ids.add(row, i)
    return rows


def to_dataset_dict(rows: list[dict], split: str = "test"):
    """Rows -> datasets.DatasetDict with one split (what lm-eval's custom_dataset returns)."""
    import datasets

    return datasets.DatasetDict({split: datasets.Dataset.from_list(rows)})


def looks_local(name: str) -> bool:
    """A path rather than a hub id (`org/name`): path markers, something on disk, not `org/name`,
    or `dir/name` whose `dir` exists here (a mistyped `models/tiny-qwen` is a missing path)."""
    p = Path(name).expanduser()
    return name.startswith((".", "/", "~")) or p.exists() or name.count("/") != 1 or p.parent.is_dir()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def make_shared(path: str | os.PathLike) -> None:
    """Give `path` the mode a file created here normally gets (0666 less the umask): results and
    checkpoints are meant to be read by others (a server running as another user)."""
    os.chmod(path, 0o666 & ~_UMASK)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
