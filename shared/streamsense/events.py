"""streamsense's event formats: the JSON records that apps, the edge and the payment service
write to Kinesis (partition key = account_id).

Every event is an envelope with ``type``, ``version``, a unique ``event_id``, ``occurred_at``
(UTC, ISO 8601), ``account_id`` and a typed ``payload``. Unknown types, missing fields, extra
fields and naive timestamps are rejected (the caller quarantines the record with the reason):
input is never guessed at.

Raw identifiers (email, IP, card number, device id) travel in events because the producers
know nothing else, but they are pseudonymized (see ``streamsense.privacy``) before anything
is stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

#: Largest serialized event accepted; larger records are quarantined, never truncated.
MAX_EVENT_BYTES = 64 * 1024

DeviceType = Literal["tv", "mobile", "tablet", "web", "console"]
NetworkType = Literal["wifi", "ethernet", "cellular_4g", "cellular_5g", "cellular_3g"]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
Id = Annotated[str, Field(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class NetworkContext(_Strict):
    """Where a request came from, as the edge's GeoIP resolved it."""

    ip: Annotated[str, Field(min_length=3, max_length=45)]
    asn: Annotated[int, Field(ge=0, lt=2**32)]
    country: Country
    city: Annotated[str, Field(max_length=128)] = ""
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class DeviceContext(_Strict):
    device_id: Id
    device_type: DeviceType


# ---- payloads ---------------------------------------------------------------------------


class SignupPayload(_Strict):
    email: Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
    plan_streams: Literal[1, 2, 4]
    device: DeviceContext
    network: NetworkContext


class LoginPayload(_Strict):
    email: Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
    success: bool
    failure_reason: Literal["bad_password", "unknown_account", "locked", "mfa_failed"] | None = (
        None
    )
    device: DeviceContext
    network: NetworkContext


class AccountChangePayload(_Strict):
    """A sensitive account change: the usual last step of an account takeover."""

    field: Literal["email", "password", "payment_method", "phone"]
    device: DeviceContext
    network: NetworkContext


class PaymentPayload(_Strict):
    card_number: Annotated[str, Field(pattern=r"^[0-9]{12,19}$")]
    merchant_id: Id
    amount: Annotated[float, Field(ge=0, le=1_000_000)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    status: Literal["approved", "declined"] = "approved"
    device: DeviceContext | None = None
    network: NetworkContext | None = None


class LabelPayload(_Strict):
    """A fraud label that arrives days after the fact (chargeback, analyst verdict)."""

    kind: Literal["chargeback", "confirmed_fraud", "confirmed_legit"]
    target_event_id: Id
    target_type: Literal["payment", "login", "signup", "account_change", "playback_start"]
    target_occurred_at: AwareDatetime
    is_fraud: bool
    # For payment labels: the entities whose risk features the label updates.
    merchant_id: Id | None = None
    card_number: Annotated[str, Field(pattern=r"^[0-9]{12,19}$")] | None = None
    source: Literal["processor", "analyst", "customer"] = "processor"


class QoE(_Strict):
    """Player-measured delivery quality since the previous heartbeat (or session start)."""

    throughput_kbps: Annotated[float, Field(ge=0, le=10_000_000)]
    bitrate_kbps: Annotated[float, Field(ge=0, le=200_000)]
    rebuffer_ms: Annotated[int, Field(ge=0, le=3_600_000)] = 0
    buffer_s: Annotated[float, Field(ge=0, le=3600)] | None = None


class PlaybackStartPayload(_Strict):
    session_id: Id
    profile_id: Id
    title_id: Id
    device: DeviceContext
    network: NetworkContext
    network_type: NetworkType
    startup_ms: Annotated[int, Field(ge=0, le=600_000)]
    audio_language: Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]
    subtitle_language: Annotated[str, Field(pattern=r"^([a-z]{2,3}|off)$")]
    qoe: QoE | None = None


class PlaybackHeartbeatPayload(_Strict):
    session_id: Id
    profile_id: Id
    title_id: Id
    position_s: Annotated[float, Field(ge=0)]
    device: DeviceContext
    network: NetworkContext
    network_type: NetworkType
    qoe: QoE
    audio_language: Annotated[str, Field(pattern=r"^[a-z]{2,3}$")] | None = None
    subtitle_language: Annotated[str, Field(pattern=r"^([a-z]{2,3}|off)$")] | None = None


class PlaybackStopPayload(_Strict):
    session_id: Id
    profile_id: Id
    title_id: Id
    watched_s: Annotated[float, Field(ge=0)]
    title_duration_s: Annotated[float, Field(gt=0)]
    device: DeviceContext
    network: NetworkContext


class ImpressionPayload(_Strict):
    """Which artwork/trailer/synopsis variant of a title a member was shown, and what came of it."""

    profile_id: Id
    title_id: Id
    variant_id: Id
    position: Annotated[int, Field(ge=0, le=1000)]
    propensity: Annotated[float, Field(gt=0, le=1)]
    played: bool
    # Which policy version chose the variant: off-policy evaluation is per version.
    policy: Annotated[str, Field(max_length=128)] | None = None
    # The member's home country: regional taste is part of the bandit's context.
    country: Country | None = None


# ---- envelopes ----------------------------------------------------------------------------


class _Envelope(_Strict):
    version: Literal[1]
    event_id: Id
    occurred_at: AwareDatetime
    account_id: Id

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class Signup(_Envelope):
    type: Literal["signup"]
    payload: SignupPayload


class Login(_Envelope):
    type: Literal["login"]
    payload: LoginPayload


class AccountChange(_Envelope):
    type: Literal["account_change"]
    payload: AccountChangePayload


class Payment(_Envelope):
    type: Literal["payment"]
    payload: PaymentPayload


class Label(_Envelope):
    type: Literal["label"]
    payload: LabelPayload


class PlaybackStart(_Envelope):
    type: Literal["playback_start"]
    payload: PlaybackStartPayload


class PlaybackHeartbeat(_Envelope):
    type: Literal["playback_heartbeat"]
    payload: PlaybackHeartbeatPayload


class PlaybackStop(_Envelope):
    type: Literal["playback_stop"]
    payload: PlaybackStopPayload


class Impression(_Envelope):
    type: Literal["impression"]
    payload: ImpressionPayload


Event = Annotated[
    Signup
    | Login
    | AccountChange
    | Payment
    | Label
    | PlaybackStart
    | PlaybackHeartbeat
    | PlaybackStop
    | Impression,
    Field(discriminator="type"),
]
EVENT_TYPES: dict[str, type[_Envelope]] = {
    "signup": Signup,
    "login": Login,
    "account_change": AccountChange,
    "payment": Payment,
    "label": Label,
    "playback_start": PlaybackStart,
    "playback_heartbeat": PlaybackHeartbeat,
    "playback_stop": PlaybackStop,
    "impression": Impression,
}
PLAYBACK_TYPES = frozenset({"playback_start", "playback_heartbeat", "playback_stop"})
ACTIVITY_TYPES = frozenset({"signup", "login", "account_change", "payment", "label"})

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class BadEvent(ValueError):
    """An input record that can never be applied. ``reason`` is a short machine-readable code
    (``malformed_json``, ``oversized``, ``unknown_type``, ``unsupported_version``,
    ``invalid_fields``, ``not_an_object``); ``detail`` says which field and why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def parse_event(data: bytes | str) -> Event:
    """Parse one serialized event or raise BadEvent with the reason."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_EVENT_BYTES:
        raise BadEvent("oversized", f"{len(raw)} bytes > {MAX_EVENT_BYTES}")
    try:
        obj: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEvent("malformed_json", str(exc)[:200]) from None
    return validate_event(obj)


def validate_event(obj: Any) -> Event:
    """Validate an already-decoded JSON object as an event or raise BadEvent."""
    if not isinstance(obj, dict):
        raise BadEvent("not_an_object", type(obj).__name__)
    kind = obj.get("type")
    if kind not in EVENT_TYPES:
        raise BadEvent("unknown_type", repr(kind)[:80])
    if obj.get("version") != 1:
        raise BadEvent("unsupported_version", f"{kind} version {obj.get('version')!r}")
    try:
        return _EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise BadEvent("invalid_fields", problems[:500]) from None


def dump_event(event: _Envelope) -> str:
    """Serialize an event the way producers write it (compact JSON, ISO 8601 'Z' times)."""
    return event.model_dump_json(exclude_none=True)
