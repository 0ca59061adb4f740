"""Title language metadata: each title's original language and whether it is dubbed.

Read from a CSV with a header naming at least ``title_id`` (or ``title``), ``language`` and
``dubbed`` (``1``/``0``, ``true``/``false``); extra columns are ignored, so the simulator's
catalogue.csv works as it is. Rows with a missing id or an invalid language are counted, not
guessed at.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streamsense.delivery.model import TitleInfo
from streamsense.storage import ObjectStore

_LANG = re.compile(r"^[a-z]{2,3}$")
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"0", "false", "no", "n", ""}


class BadCatalogue(ValueError):
    pass


@dataclass(frozen=True)
class TitleCatalogue:
    titles: Mapping[str, TitleInfo]
    rejected_rows: int = 0

    def get(self, title_id: str) -> TitleInfo | None:
        return self.titles.get(title_id)

    def __len__(self) -> int:
        return len(self.titles)

    @classmethod
    def empty(cls) -> TitleCatalogue:
        return cls({})

    @classmethod
    def from_csv(cls, body: bytes) -> TitleCatalogue:
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        reader = csv.reader(io.StringIO(body.decode("utf-8-sig")))
        header = [h.strip().lower() for h in next(reader, [])]
        id_col = (
            header.index("title_id")
            if "title_id" in header
            else (header.index("title") if "title" in header else -1)
        )
        if id_col < 0 or "language" not in header or "dubbed" not in header:
            raise BadCatalogue(f"catalogue header needs title_id, language, dubbed: {header!r}")
        lang_col, dub_col = header.index("language"), header.index("dubbed")
        titles: dict[str, TitleInfo] = {}
        rejected = 0
        for row in reader:
            if len(row) <= max(id_col, lang_col, dub_col):
                rejected += 1
                continue
            tid, lang, dub = (
                row[id_col].strip(),
                row[lang_col].strip().lower(),
                row[dub_col].strip().lower(),
            )
            if not tid or not _LANG.match(lang) or dub not in _TRUE | _FALSE:
                rejected += 1
                continue
            titles[tid] = TitleInfo(lang, dub in _TRUE)
        return cls(titles, rejected)


#: Where the service's title metadata lands in the exports bucket; the newest key (by name:
#: ``catalogue/2024-06-01.csv``) is the current catalogue.
CATALOGUE_PREFIX = "catalogue/"


class CatalogueCache:
    """The current catalogue, loaded once and re-checked at most every ``ttl_s`` seconds; a
    missing or unreadable catalogue keeps the last good one (or an empty one) and sets
    ``error`` so the caller can log and count it."""

    def __init__(
        self,
        store: ObjectStore | None,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self.catalogue = TitleCatalogue.empty()
        self.key: str | None = None
        self.error: str | None = None
        self._checked: float | None = None

    def get(self) -> TitleCatalogue:
        now = self.clock()
        if self._checked is not None and now - self._checked < self.ttl_s:
            return self.catalogue
        self._checked = now
        if self.store is None:
            self.error = "exports bucket not declared"
            return self.catalogue
        try:
            keys = self.store.list(CATALOGUE_PREFIX)
            if not keys:
                self.error = f"no catalogue under {CATALOGUE_PREFIX}"
                return self.catalogue
            newest = max(keys)
            if newest != self.key:
                self.catalogue = TitleCatalogue.from_csv(self.store.get(newest))
                self.key = newest
            self.error = None
        except Exception as exc:  # bad CSV, missing object, botocore errors: keep the last good
            self.error = f"{type(exc).__name__}: {exc}"[:300]
        return self.catalogue
