"""The benchmark's protocol pieces: CP@k on a hand-made case, and protocol A's sizes."""

from __future__ import annotations

import pytest
from streamsense.fraud import history as H
from streamsense_bench.fraud_protocol import card_precision_top_k, protocol_a


def test_card_precision_groups_by_customer_and_removes_detected_ones() -> None:
    day = [0, 0, 0, 0, 1, 1, 1]
    customer = [1, 1, 2, 3, 1, 2, 3]
    fraud = [0, 1, 0, 0, 1, 0, 1]
    score = [0.9, 0.1, 0.8, 0.2, 0.99, 0.5, 0.4]
    # day 0, top 2 by max score: customer 1 (0.9, compromised), customer 2 (0.8): 1/2.
    # day 1: customer 1 was detected on day 0 and is left out; top 2: 2 (0.5), 3 (0.4, fraud): 1/2
    assert card_precision_top_k(day, customer, fraud, score, k=2) == 0.5
    # k = 1: day 0 -> customer 1 (hit); day 1 -> customer 2 (miss): 0.5
    assert card_precision_top_k(day, customer, fraud, score, k=1) == 0.5


@pytest.mark.data
def test_protocol_a_sizes(data_dir) -> None:  # type: ignore[no-untyped-def]
    h = H.load_handbook(str(data_dir / "fraud-handbook" / "transactions.csv.gz"))
    (s,) = protocol_a(h)
    assert (len(s.train), int(h.fraud[s.train].sum())) == (67_240, 598)
    assert (len(s.test), int(h.fraud[s.test].sum())) == (58_264, 385)
