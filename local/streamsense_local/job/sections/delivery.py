"""Personalized delivery: how often the audio/subtitle default delivery_prefs serves is what the
member then picks, on the replayed traffic."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamsense_sim import Simulator

#: The exports bucket key prefix delivery_prefs reads its title catalogue from.
CATALOGUE_PREFIX = "catalogue/"


def catalogue_export(sim: Simulator) -> tuple[str, bytes]:
    """The simulator's title catalogue as the service's catalogue export: the key under the
    exports bucket (``catalogue/<start date>.csv``) and the CSV body (title_id,language,dubbed)."""
    cat = sim.catalogue
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["title_id", "language", "dubbed"])
    for tid, lang, dubbed in zip(cat.title_ids, cat.language, cat.dubbed.tolist(), strict=True):
        writer.writerow([tid, lang, 1 if dubbed else 0])
    return f"{CATALOGUE_PREFIX}{sim.config.start.isoformat()}.csv", out.getvalue().encode()
