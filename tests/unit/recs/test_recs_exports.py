"""Viewing-history export readers: documented CSV, MovieLens ratings.csv and u.data, Parquet,
bad rows quarantined with line numbers, files with too many bad rows rejected whole."""

from __future__ import annotations

import gzip
import io

import pytest
from streamsense.recs.exports import BadExport, read_catalogue, read_plays


def test_documented_csv_with_optional_columns() -> None:
    body = (b"member,title,timestamp,weight,region\n"
            b"p1,t1,1733000000,0.8,US\n"
            b"p2,t2,2024-12-01T10:00:00+01:00,,DE\n")
    plays, bad = read_plays(body, "viewing-history/x.csv")
    assert bad == []
    assert plays.member.tolist() == ["p1", "p2"]
    assert plays.ts.tolist() == [1733000000, 1733043600]
    assert plays.weight.tolist() == pytest.approx([0.8, 1.0])
    assert plays.region.tolist() == ["US", "DE"]


def test_required_columns_only_and_gzip() -> None:
    body = gzip.compress(b"title,member,timestamp\nt9,p9,1733000000\n")
    plays, _ = read_plays(body, "plays.csv.gz")
    assert (plays.member.tolist(), plays.title.tolist(), plays.region.tolist()) == (["p9"], ["t9"], ["ALL"])


def test_movielens_ratings_and_udata_adapters() -> None:
    plays, _ = read_plays(b"userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n", "ratings.csv")
    assert (plays.member[0], plays.title[0], plays.ts[0], float(plays.weight[0])) == ("1", "31", 1260759144, 2.5)
    plays, _ = read_plays(b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n", "ml-100k/u.data")
    assert plays.member.tolist() == ["196", "186"] and plays.title.tolist() == ["242", "302"]
    assert plays.ts.tolist() == [881250949, 891717742]


def test_bad_rows_are_quarantined_with_their_line_numbers() -> None:
    good = [f"p{i},t{i % 5},{1733000000 + i}" for i in range(300)]
    lines = ["member,title,timestamp", *good[:10], "p,t,yesterday", *good[10:], "only,two", ",t1,1733000000"]
    plays, bad = read_plays(("\n".join(lines) + "\n").encode(), "plays.csv")
    assert len(plays) == 300
    assert [(b.line, b.reason) for b in bad] == [(12, "invalid_row"), (303, "wrong_column_count"),
                                                 (304, "invalid_row")]
    assert "yesterday" in bad[0].raw


def test_a_file_with_too_many_bad_rows_is_rejected_whole() -> None:
    lines = ["member,title,timestamp"] + [f"p{i},t1,{'x' if i % 10 == 0 else 1733000000}" for i in range(100)]
    with pytest.raises(BadExport) as err:
        read_plays(("\n".join(lines)).encode(), "plays.csv")
    assert err.value.reason == "too_many_bad_rows"
    assert "10 of 100 rows" in err.value.detail
    # The same file passes with a looser limit, the bad rows quarantined.
    plays, bad = read_plays(("\n".join(lines)).encode(), "plays.csv", max_bad_fraction=0.2)
    assert (len(plays), len(bad)) == (90, 10)


@pytest.mark.parametrize(("body", "key", "reason"), [
    (b"user;movie\n1;2\n", "plays.csv", "unknown_format"),
    (b"member,title,timestamp\n", "plays.csv", "empty"),
    (b"\x1f\x8bnot really gzip", "plays.csv.gz", "corrupt_gzip"),
    (b"member,title,timestamp\n\xff\xfe,x,1\n", "plays.csv", "not_utf8"),
])
def test_unreadable_files_are_rejected(body: bytes, key: str, reason: str) -> None:
    with pytest.raises(BadExport) as err:
        read_plays(body, key)
    assert err.value.reason == reason


def test_parquet_export() -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"member": ["p1", "p2", ""], "title": ["t1", "t2", "t3"],
                      "timestamp": [1733000000, 1733000100, 1733000200], "weight": [1.0, 0.5, 1.0]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    plays, bad = read_plays(buf.getvalue(), "viewing-history/plays.parquet", max_bad_fraction=0.5)
    assert plays.member.tolist() == ["p1", "p2"]
    assert plays.weight.tolist() == pytest.approx([1.0, 0.5])
    assert [(b.line, b.reason) for b in bad] == [(4, "invalid_row")]


def test_catalogue_readers() -> None:
    cat = read_catalogue(b'movieId,title,genres\n1,"Toy Story (1995)",Adventure|Animation\n',
                         b"userId,movieId,tag,timestamp\n2,1,pixar,1445714994\n")
    assert (cat.title.tolist(), cat.name.tolist(), cat.genres, cat.tags) == (
        ["1"], ["Toy Story (1995)"], (("Adventure", "Animation"),), (("pixar",),))
    cat = read_catalogue(b"title,name,genres,tags\nt-1,Dune,Sci-Fi,desert|epic\n")
    assert cat.tags == (("desert", "epic"),)


def test_an_unclosed_quote_spoils_only_its_own_line() -> None:
    body = ("member,title,timestamp\n" + "".join(f"u{i},t{i},{1_700_000_000 + i}\n" for i in range(200))
            + 'u2,"t2\n' + "u3,t3,1700000001\n").encode()
    plays, bad = read_plays(body, "viewing-history/x.csv")
    assert len(plays.member) == 201 and plays.member[-1] == "u3"
    assert [b.line for b in bad] == [202]
