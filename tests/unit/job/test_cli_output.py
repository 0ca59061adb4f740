"""What `invoke` and `query` print: JSON with binary attributes base64-encoded (as the AWS CLI
prints them) and numbers DynamoDB returns as Decimal written as their digits."""

from __future__ import annotations

import json
from decimal import Decimal

from streamsense_local.cli import _dump


def test_binary_prints_as_base64_and_decimals_as_digits() -> None:
    out = _dump({"sketch": b"\x00\x01sk", "n": Decimal("1.5"), "nested": [bytearray(b"\xff")]})
    assert json.loads(out) == {"sketch": "AAFzaw==", "n": "1.5", "nested": ["/w=="]}
