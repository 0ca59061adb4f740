"""The qoe_hints function's one domain call: a batch of playback events in, segment statistics
updated and hints re-published out (storage behind streamsense.storage.Table)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from streamsense.events import Event
from streamsense.observability import count
from streamsense.pipeline import BatchResult, Parsed
from streamsense.qoe.aggregate import aggregate, as_qoe_records
from streamsense.qoe.hints import HintConfig, publish_hints
from streamsense.storage import Table


def _utcnow() -> datetime:
    return datetime.now(UTC)


class QoeHints:
    def __init__(
        self,
        table: Table,
        config: HintConfig | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.table = table
        self.config = config or HintConfig()
        self.clock = clock

    def apply(self, records: Sequence[Parsed[Event]]) -> BatchResult:
        now = self.clock()
        report = aggregate(self.table, as_qoe_records((p.value, p.source) for p in records), now)
        hints = publish_hints(self.table, report.segments, now, self.config)
        count("QoeSamplesApplied", report.applied)
        count("QoeDuplicatesSkipped", report.duplicates)
        count("QoeReplaysSkipped", report.replayed)
        count("HintsPublished", len(hints))
        return BatchResult()
