"""Segments: the groups of sessions whose networks behave alike, region x network type x device
class, and the chain of coarser segments a hint falls back to when a segment's data is thin.

Device types collapse into classes that share player and network habits: ``tv`` (TVs and
consoles: living-room devices on home networks), ``mobile`` (phones and tablets), ``web``.
Fallback order, most specific first: region x network x device, region x network, network
type alone (the strongest single predictor of throughput), then everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streamsense.events import PlaybackHeartbeat, PlaybackStart

Level = Literal["rnd", "rn", "n", "all"]
LEVELS: tuple[Level, ...] = ("rnd", "rn", "n", "all")
LEVEL_NAMES: dict[Level, str] = {
    "rnd": "region x network x device",
    "rn": "region x network",
    "n": "network",
    "all": "all traffic",
}

DEVICE_CLASS = {"tv": "tv", "console": "tv", "mobile": "mobile", "tablet": "mobile", "web": "web"}


@dataclass(frozen=True, order=True)
class Segment:
    region: str  # ISO country code, as the edge's GeoIP resolved it
    network: str  # events.NetworkType
    device: str  # a device class (DEVICE_CLASS values)

    def key(self, level: Level) -> str:
        """The segment's id at a level of the fallback chain."""
        if level == "rnd":
            return f"{self.region}|{self.network}|{self.device}"
        if level == "rn":
            return f"{self.region}|{self.network}"
        if level == "n":
            return self.network
        return "*"

    def chain(self) -> list[tuple[Level, str]]:
        return [(level, self.key(level)) for level in LEVELS]

    def as_dict(self) -> dict[str, str]:
        return {"region": self.region, "network": self.network, "device": self.device}

    @classmethod
    def of(cls, region: str, network: str, device_type: str) -> Segment:
        return cls(region, network, DEVICE_CLASS.get(device_type, device_type))


def segment_of(event: PlaybackStart | PlaybackHeartbeat) -> Segment:
    p = event.payload
    return Segment.of(p.network.country, p.network_type, p.device.device_type)
