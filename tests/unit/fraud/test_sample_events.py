"""The committed sample events are exactly what tests/unit/fraud/sample_events.py writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_committed_samples_match_the_generator() -> None:
    spec = importlib.util.spec_from_file_location("fraud_sample_events", HERE / "sample_events.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = module.files()
    assert len(files) == 27
    stale = [str(p) for p, text in files.items() if not p.is_file() or p.read_text() != text]
    assert stale == [], "run python tests/unit/fraud/sample_events.py"
