"""Viewing-history export readers.

The documented format (CSV with a header row, optionally gzip-compressed, or Parquet):

| column | type | required | meaning |
|---|---|---|---|
| ``member`` | string, 1-128 chars | yes | the profile that watched (an internal id, never an email) |
| ``title`` | string, 1-128 chars | yes | the title id |
| ``timestamp`` | unix seconds (integer) or ISO 8601 with a zone | yes | when the play happened |
| ``weight`` | number >= 0 | no (default 1) | watch fraction, rating, ... |
| ``region`` | ISO 3166 alpha-2 | no (default ``ALL``) | where the member watched |

Adapters read MovieLens ``ratings.csv`` (userId, movieId, rating, timestamp; rating becomes the
weight) and MovieLens-100k ``u.data`` (tab-separated user, item, rating, timestamp, no header).
Catalogue files: MovieLens ``movies.csv`` (movieId, title, genres with ``|``) or the documented
``title,name,genres[,tags]`` CSV.

A row that cannot be read is quarantined with its line number and reason; if more than
``max_bad_fraction`` of the rows are bad the whole file is rejected (BadExport) and nothing of
it is applied.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from streamsense.recs.data import GLOBAL_REGION, Catalogue, Plays

MAX_EXPORT_BYTES = 2 * 1024**3
MAX_ID_CHARS = 128
DEFAULT_MAX_BAD_FRACTION = 0.01
_REGION = re.compile(r"^[A-Z]{2}$")
# Plausible play times: 1995-01-01 .. 2100-01-01.
_MIN_TS, _MAX_TS = 788_918_400, 4_102_444_800


class BadExport(ValueError):
    """A file that is rejected whole (reason is a short code; detail says why)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class BadRow:
    line: int  # 1-based line number in the file (header = line 1)
    reason: str
    raw: str


def _decompress(body: bytes) -> bytes:
    if len(body) > MAX_EXPORT_BYTES:
        raise BadExport("oversized", f"{len(body)} bytes > {MAX_EXPORT_BYTES}")
    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise BadExport("corrupt_gzip", str(exc)) from None
    return body


def _parse_ts(value: str) -> int:
    v = value.strip()
    if re.fullmatch(r"-?\d+", v):
        ts = int(v)
    else:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            raise ValueError("timestamp without a time zone")
        ts = int(dt.timestamp())
    if not _MIN_TS <= ts < _MAX_TS:
        raise ValueError(f"timestamp {ts} out of range")
    return ts


def _parse_weight(value: str) -> float:
    w = float(value)
    if not math.isfinite(w) or w < 0 or w > 1e6:
        raise ValueError(f"weight {value!r} out of range")
    return w


def _check_id(value: str, what: str) -> str:
    v = value.strip()
    if not v or len(v) > MAX_ID_CHARS:
        raise ValueError(f"{what} empty or longer than {MAX_ID_CHARS}")
    return v


class _Builder:
    def __init__(self) -> None:
        self.member: list[str] = []
        self.title: list[str] = []
        self.ts: list[int] = []
        self.weight: list[float] = []
        self.region: list[str] = []
        self.bad: list[BadRow] = []

    def add(self, line: int, raw: str, member: str, title: str, ts: str, weight: str | None,
            region: str | None) -> None:
        try:
            m = _check_id(member, "member")
            t = _check_id(title, "title")
            tt = _parse_ts(ts)
            w = 1.0 if weight is None or weight.strip() == "" else _parse_weight(weight)
            r = (region or "").strip() or GLOBAL_REGION
            if r != GLOBAL_REGION and not _REGION.match(r):
                raise ValueError(f"region {r!r} is not ISO 3166 alpha-2")
        except ValueError as exc:
            self.bad.append(BadRow(line, "invalid_row", f"{exc}"[:200] + f" | {raw[:300]}"))
            return
        self.member.append(m)
        self.title.append(t)
        self.ts.append(tt)
        self.weight.append(w)
        self.region.append(r)

    def finish(self, max_bad_fraction: float) -> tuple[Plays, list[BadRow]]:
        total = len(self.member) + len(self.bad)
        if total == 0:
            raise BadExport("empty", "no data rows")
        if len(self.bad) > max_bad_fraction * total:
            first = "; ".join(f"line {b.line}: {b.raw[:80]}" for b in self.bad[:3])
            raise BadExport("too_many_bad_rows",
                            f"{len(self.bad)} of {total} rows are bad (limit {max_bad_fraction:.1%}): {first}")
        plays = Plays(
            member=np.array(self.member, dtype=str), title=np.array(self.title, dtype=str),
            ts=np.array(self.ts, dtype=np.int64), weight=np.array(self.weight, dtype=np.float32),
            region=np.array(self.region, dtype=str),
        )
        return plays, self.bad


def _rows(text: str, delimiter: str) -> list[tuple[int, list[str], str]]:
    """One record per physical line, parsed on its own: an unclosed quote spoils its own row
    (quarantined with its line number), never the lines after it."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        row = next(csv.reader((line,), delimiter=delimiter), [])
        out.append((n, row, line))
    return out


def read_plays(body: bytes, key: str = "", *,
               max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION) -> tuple[Plays, list[BadRow]]:
    """Read a viewing-history export in any supported format (chosen by name and header)."""
    name = key.lower().rsplit("/", 1)[-1]
    if name.endswith(".parquet"):
        return read_parquet(body, max_bad_fraction=max_bad_fraction)
    data = _decompress(body)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadExport("not_utf8", str(exc)) from None
    if name.startswith("u.data") or (name.endswith(".data") or name.endswith(".data.gz")):
        return _read_udata(text, max_bad_fraction)
    first = text.split("\n", 1)[0].strip().lower()
    header = [h.strip() for h in next(csv.reader([first]))] if first else []
    if header[:4] == ["userid", "movieid", "rating", "timestamp"]:
        return _read_movielens(text, max_bad_fraction)
    if {"member", "title", "timestamp"} <= set(header):
        return _read_documented(text, header, max_bad_fraction)
    raise BadExport("unknown_format", f"header {first[:120]!r} is neither the documented "
                    "member,title,timestamp[,weight,region] nor MovieLens ratings.csv")


def _read_documented(text: str, header: list[str], max_bad: float) -> tuple[Plays, list[BadRow]]:
    col = {h: i for i, h in enumerate(header)}
    b = _Builder()
    for n, row, raw in _rows(text, ",")[1:]:
        if not raw.strip():
            continue
        if len(row) != len(header):
            b.bad.append(BadRow(n, "wrong_column_count", f"{len(row)} columns, expected {len(header)} | {raw[:300]}"))
            continue
        b.add(n, raw, row[col["member"]], row[col["title"]], row[col["timestamp"]],
              row[col["weight"]] if "weight" in col else None,
              row[col["region"]] if "region" in col else None)
    return b.finish(max_bad)


def _read_movielens(text: str, max_bad: float) -> tuple[Plays, list[BadRow]]:
    b = _Builder()
    for n, row, raw in _rows(text, ",")[1:]:
        if not raw.strip():
            continue
        if len(row) != 4:
            b.bad.append(BadRow(n, "wrong_column_count", f"{len(row)} columns, expected 4 | {raw[:300]}"))
            continue
        b.add(n, raw, row[0], row[1], row[3], row[2], None)
    return b.finish(max_bad)


def _read_udata(text: str, max_bad: float) -> tuple[Plays, list[BadRow]]:
    b = _Builder()
    for n, row, raw in _rows(text, "\t"):
        if not raw.strip():
            continue
        if len(row) != 4:
            b.bad.append(BadRow(n, "wrong_column_count", f"{len(row)} columns, expected 4 | {raw[:300]}"))
            continue
        b.add(n, raw, row[0], row[1], row[3], row[2], None)
    return b.finish(max_bad)


def read_parquet(body: bytes, *, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
                 ) -> tuple[Plays, list[BadRow]]:
    """The documented columns from a Parquet file (line = 1-based row number + 1, as if the
    file had a header line, so CSV and Parquet report the same numbers)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the layer
        raise BadExport("parquet_unsupported", "pyarrow is not installed in this runtime") from None
    if len(body) > MAX_EXPORT_BYTES:
        raise BadExport("oversized", f"{len(body)} bytes > {MAX_EXPORT_BYTES}")
    try:
        table = pq.read_table(io.BytesIO(body))
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise BadExport("corrupt_parquet", str(exc)[:300]) from None
    cols = set(table.column_names)
    missing = {"member", "title", "timestamp"} - cols
    if missing:
        raise BadExport("unknown_format", f"parquet without columns {sorted(missing)}")
    data = {c: table.column(c).to_pylist() for c in cols & {"member", "title", "timestamp", "weight", "region"}}
    b = _Builder()
    for k in range(table.num_rows):
        ts = data["timestamp"][k]
        ts_s = str(int(ts.timestamp())) if isinstance(ts, datetime) and ts.tzinfo else str(ts)
        w = data.get("weight", [None] * table.num_rows)[k]
        r = data.get("region", [None] * table.num_rows)[k]
        b.add(k + 2, f"row {k}", str(data["member"][k] or ""), str(data["title"][k] or ""), ts_s,
              None if w is None else str(w), None if r is None else str(r))
    return b.finish(max_bad_fraction)


def read_catalogue(body: bytes, tags_body: bytes | None = None) -> Catalogue:
    """MovieLens movies.csv (movieId,title,genres) or the documented title,name,genres[,tags]
    CSV; ``tags_body`` optionally adds MovieLens tags.csv (userId,movieId,tag,timestamp)."""
    text = _decompress(body).decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if header[:3] == ["movieid", "title", "genres"]:
        id_col, name_col, genre_col, tag_col = 0, 1, 2, None
    elif header[:3] == ["title", "name", "genres"]:
        id_col, name_col, genre_col = 0, 1, 2
        tag_col = 3 if len(header) > 3 and header[3] == "tags" else None
    else:
        raise BadExport("unknown_format", f"catalogue header {header!r}")
    ids: list[str] = []
    names: list[str] = []
    genres: list[tuple[str, ...]] = []
    tags: dict[str, list[str]] = {}
    for row in reader:
        if len(row) < 3 or not row[id_col].strip():
            continue
        ids.append(row[id_col].strip())
        names.append(row[name_col].strip())
        genres.append(tuple(g for g in row[genre_col].split("|") if g))
        if tag_col is not None and len(row) > tag_col:
            tags[ids[-1]] = [t for t in row[tag_col].split("|") if t]
    if tags_body:
        for row in csv.reader(io.StringIO(_decompress(tags_body).decode("utf-8-sig"))):
            if len(row) >= 3 and row[1] != "movieId":
                tags.setdefault(row[1].strip(), []).append(row[2])
    return Catalogue(title=np.array(ids, dtype=str), name=np.array(names, dtype=str),
                     genres=tuple(genres), tags=tuple(tuple(tags.get(i, ())) for i in ids))
