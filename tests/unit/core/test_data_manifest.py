"""`make data`'s manifest matches the team's copies, so `check` is a real verification."""

from __future__ import annotations

from pathlib import Path

from streamsense_local.data import check, sha256_path


def test_team_data_matches_manifest(data_dir: Path) -> None:
    assert check(data_dir) == {
        "movielens": "ok",
        "abr": "ok",
        "bandits": "ok",
        "fraud-handbook": "ok",
        "netflix-top10": "ok",
    }


def test_check_reports_missing_and_mismatch(tmp_path: Path) -> None:
    (tmp_path / "movielens/ml-latest-small").mkdir(parents=True)
    (tmp_path / "movielens/ml-latest-small/ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    status = check(tmp_path)
    assert status["movielens"].startswith("checksum mismatch movielens/ml-latest-small/ratings.csv")
    assert status["abr"].startswith("missing abr/traces/norway-3g")


def test_folder_digest_depends_on_names_and_content(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/x.json").write_text("1")
    first = sha256_path(tmp_path / "a")
    (tmp_path / "a/x.json").rename(tmp_path / "a/y.json")
    assert sha256_path(tmp_path / "a") != first
