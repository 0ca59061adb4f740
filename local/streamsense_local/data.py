"""`make data`: fetch the public data sets into STREAMSENSE_DATA_DIR and verify them.

`python -m streamsense_local.data check [--dest DIR]` verifies every set against the sha256
digests below (the team's copies); `download` fetches the sets whose sources publish them in a
form we can take as is (zip/tar archives of CSV/JSON), then checks. Two sets are published only
as Python pickles (the Fraud Detection Handbook's daily files) or as a moving spreadsheet export
(Netflix Top 10): we never unpickle downloaded files, so for those `download` prints where to get
them and what to convert, and `check` verifies the result.

Digests of folders are over (relative path, sha256 of content) of every file, sorted.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DataSet:
    name: str
    license: str
    digests: dict[str, str]  # relative path (file or folder) -> sha256
    archive_url: str | None = None
    # archive member prefix -> destination relative path (folder copy)
    members: dict[str, str] = field(default_factory=dict)
    manual: str = ""


DATASETS: tuple[DataSet, ...] = (
    DataSet(
        "movielens",
        "GroupLens: research use only, keep its README beside the data, no redistribution in products",
        {
            "movielens/ml-latest-small/ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
            "movielens/ml-latest-small/movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
            "movielens/ml-latest-small/tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
            "movielens/ml-latest-small/links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
        },
        archive_url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        members={"ml-latest-small/": "movielens/ml-latest-small/"},
    ),
    DataSet(
        "abr",
        "Sabre simulator traces and videos (BSD-2-Clause); Pensieve's envivio video (MIT)",
        {
            "abr/traces/norway-3g": "ada947849b3bb338aea5e9883fd31944d5b2ba9152215e553f4d246db02f7559",
            "abr/traces/fcc-sd": "375cd50614cbaed3ea70c6e8a9f614bad742403d14dbd99ad3d6e9681c1c8f81",
            "abr/traces/fcc-hd": "53b9abba704ed38e9eb3f4005072ced2dc1bd1be63de37a794555be19412df1f",
            "abr/videos/envivio": "fe841e4fa8a21763305c9557e210ee89edac5de70da007096b97d2765ed64d7c",
            "abr/videos/bbb.json": "127375283e1f66e2447510974ad496fab4035bbb0525376ca76b92311f9c4e50",
            "abr/videos/bbb4k.json": "3b3db4aeb7b0e006963c4966e9d911560651141a3c95be3c14d42bdf424c6236",
        },
        archive_url="https://github.com/UMass-LIDS/sabre/archive/refs/heads/master.zip",
        members={
            "sabre-master/example/mmsys18/3Glogs/": "abr/traces/norway-3g/",
            "sabre-master/example/mmsys18/sd_fs/": "abr/traces/fcc-sd/",
            "sabre-master/example/mmsys18/hd_fs/": "abr/traces/fcc-hd/",
            "sabre-master/example/mmsys18/bbb.json": "abr/videos/bbb.json",
            "sabre-master/example/mmsys18/bbb4k.json": "abr/videos/bbb4k.json",
        },
        manual="envivio chunk sizes: video_server/video_size_0..5 of the Pensieve repository "
        "(hongzimao/pensieve) -> abr/videos/envivio/",
    ),
    DataSet(
        "bandits",
        "Open Bandit Dataset sample, ZOZO (Apache-2.0)",
        {
            "bandits/obd/random": "57d85aac1b6438c4f4e9ff77a0ae7f48ae4911a7b2f222fcd35ce1cfdb456f9f",
            "bandits/obd/bts": "9f3bfe0772bba361664441ee174e9aee31a73dc8950036b75ada0707f4b46af5",
        },
        archive_url="https://github.com/st-tech/zr-obp/archive/refs/heads/master.zip",
        members={
            "zr-obp-master/obd/random/men/": "bandits/obd/random/men/",
            "zr-obp-master/obd/bts/men/": "bandits/obd/bts/men/",
        },
    ),
    DataSet(
        "fraud-handbook",
        "Fraud Detection Handbook (Le Borgne et al., ULB 2022): no license upstream, internal evaluation only",
        {
            "fraud-handbook/transactions.csv.gz": "00800bd4fe76eb8037e340ae0487d263549a271ea872524b6c915b54b5f5159e",
            "fraud-handbook/features-reference.csv.gz": "2c6549d04d2396802d970435846fabdc51764cf1c7f0d958a6e7791c5fdcf04d",
        },
        manual="published as daily pandas pickles in the Fraud-Detection-Handbook repositories "
        "simulated-data-raw (-> transactions.csv.gz, all days concatenated, values unchanged) and "
        "simulated-data-transformed (-> features-reference.csv.gz: TRANSACTION_ID + the 14 features, "
        "10 significant digits). streamsense never unpickles downloaded files: convert them in a "
        "sandbox you trust, or ask your data team for the CSVs.",
    ),
    DataSet(
        "netflix-top10",
        "Netflix Top 10 (top10.netflix.com): published openly, no license stated; cite Netflix Top 10",
        {
            "netflix-top10/all-weeks-countries.2021H2.tsv": "6a32edb8204ed60ca4c2ddf7991f9bc98797eb6e339015855e5bd484a5d46a4d",
            "netflix-top10/all-weeks-countries.2022H1.tsv": "1d4cef3dd84e61e41a0ee7e00500d21208f1c74860c7c88272abe5a0d0433493",
            "netflix-top10/all-weeks-global.through-2022-06-26.tsv": "fd2fbf0b2d3144a296f24e81d6dbf357f0ac54273c15b413bdd9cc19d6bd60e1",
        },
        manual="all-weeks-countries.xlsx and all-weeks-global.xlsx from top10.netflix.com, as "
        "exported on 2022-11-15, converted to TSV (weeks 2021-07-04..2021-12-26 and "
        "2022-01-02..2022-06-26 split in two files; values unchanged). Today's export has been "
        "revised since, so its digests differ: the benchmark then still runs, on different numbers.",
    ),
)


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a folder as (relative path, content digest) of every file."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            file = Path(root) / name
            digest.update(str(file.relative_to(path)).encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def check(dest: Path) -> dict[str, str]:
    """Status per data set: 'ok', 'missing: ...' or 'mismatch: ...'."""
    status: dict[str, str] = {}
    for ds in DATASETS:
        problems = []
        for rel, expected in ds.digests.items():
            path = dest / rel
            if not path.exists():
                problems.append(f"missing {rel}")
            elif sha256_path(path) != expected:
                problems.append(f"checksum mismatch {rel}")
        status[ds.name] = "ok" if not problems else "; ".join(problems)
    return status


def _extract(archive: bytes, members: dict[str, str], dest: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        for info in zf.infolist():
            for prefix, target in members.items():
                if info.is_dir() or not info.filename.startswith(prefix):
                    continue
                rest = info.filename[len(prefix) :]
                out = dest / target / rest if target.endswith("/") else dest / target
                if ".." in Path(rest).parts:
                    raise ValueError(f"unsafe path in archive: {info.filename}")
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)


def download(dest: Path) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    before = check(dest)
    for ds in DATASETS:
        if before[ds.name] == "ok":
            print(f"{ds.name}: present and verified")
            continue
        if ds.archive_url:
            print(f"{ds.name}: downloading {ds.archive_url}")
            try:
                with urllib.request.urlopen(ds.archive_url, timeout=120) as response:
                    _extract(response.read(), ds.members, dest)
            except OSError as exc:
                print(f"{ds.name}: download failed ({exc}); is this machine online?")
        if ds.manual:
            print(f"{ds.name}: by hand: {ds.manual}")
        print(f"  license: {ds.license}")
    after = check(dest)
    for name, state in after.items():
        print(f"{name:15s} {state}")
    return 0 if all(s == "ok" for s in after.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamsense-data", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("check", "download"))
    parser.add_argument("--dest", type=Path, default=Path(os.environ.get("STREAMSENSE_DATA_DIR", "data")))
    args = parser.parse_args(argv)
    if args.command == "check":
        status = check(args.dest)
        for name, state in status.items():
            print(f"{name:15s} {state}")
        return 0 if all(s == "ok" for s in status.values()) else 1
    return download(args.dest)


if __name__ == "__main__":
    sys.exit(main())
