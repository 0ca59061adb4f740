"""What every benchmark shares: where the team data is, where results go, the table printer."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(os.environ.get("STREAMSENSE_BENCH_DIR", "bench-results"))


def data_dir() -> Path:
    """The team data folder (STREAMSENSE_DATA_DIR, default ./data); fails loudly if absent."""
    path = Path(os.environ.get("STREAMSENSE_DATA_DIR", "data"))
    if not path.is_dir():
        raise SystemExit(
            f"team data not found at {path.resolve()}: set STREAMSENSE_DATA_DIR "
            "(see README, 'Data')"
        )
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def write_results(name: str, results: Mapping[str, Any]) -> Path:
    """Write bench-results/<name>.json (stable keys, NaN -> null) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(_clean(results), indent=2, sort_keys=True) + "\n")
    return path


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table on stdout."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 100 else f"{v:,.1f}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
