"""Simulation settings. Every knob has a documented default; the seed fixes everything else."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

ATTACK_TYPES = (
    "account_takeover",
    "credential_stuffing",
    "impossible_travel",
    "concurrent_streams",
    "card_testing",
    "stolen_card",
)


@dataclass(frozen=True)
class AttackRates:
    """Expected attacks per day per 100,000 accounts (Poisson-drawn each day).

    A credential-stuffing *campaign* hits ``stuffing_targets`` accounts from one IP, so its
    rate counts campaigns, not victims. Card testing and stolen-card fraud create their own
    (fraudulent) accounts."""

    account_takeover: float = 30.0
    credential_stuffing: float = 3.0
    impossible_travel: float = 30.0
    concurrent_streams: float = 30.0
    card_testing: float = 6.0
    stolen_card: float = 20.0

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in ATTACK_TYPES}

    def scaled(self, factor: float) -> AttackRates:
        return AttackRates(**{k: v * factor for k, v in self.as_dict().items()})


@dataclass(frozen=True)
class SimConfig:
    accounts: int = 10_000
    days: int = 1
    seed: int = 0
    #: First simulated day (UTC midnight). A Monday, so weekly cycles start at a known point.
    start: date = date(2024, 6, 3)
    #: Team data folder: MovieLens movies.csv (+ ratings.csv for popularity) for the catalogue,
    #: abr/traces for throughput. None = generated catalogue and parametric throughput.
    data_dir: Path | None = None
    #: Seconds between a session's heartbeats (each carries QoE since the previous one).
    heartbeat_s: int = 300
    #: Which half of each ABR trace family feeds throughput: "all", or "train" (even sorted
    #: file names) / "eval" (odd) so a QoE benchmark never trains on its evaluation traces.
    trace_split: str = "all"
    attack_rates: AttackRates = field(default_factory=AttackRates)
    #: Restrict members' home countries (ISO codes); None = every country in GeoNames.
    countries: tuple[str, ...] | None = None
    #: Titles generated when no MovieLens catalogue is available.
    generated_titles: int = 5_000
    #: New titles that launch per week of the period (each spikes, then decays).
    new_releases_per_week: float = 10.0
    #: Chance per account per day of leaving on a trip (0.4%: about 1.5 trips a year).
    trip_rate_per_day: float = 0.004
    #: Share of accounts that sign up during the period (per day).
    signup_rate_per_day: float = 0.0015
    #: Labels (chargebacks, analyst verdicts) land days after the fact; keep those that fall
    #: after the period's end (appended in time order) so a short run still carries labels.
    include_late_labels: bool = True
    #: Accounts generated together (vectorized); also the progress-bar granularity.
    block_size: int = 10_000

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise ValueError("accounts must be >= 1")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.heartbeat_s < 10:
            raise ValueError("heartbeat_s must be >= 10")
        if self.trace_split not in ("all", "train", "eval"):
            raise ValueError("trace_split must be all, train or eval")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")

    @property
    def start_ms(self) -> int:
        return int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * 86_400_000

    def to_json(self) -> dict[str, object]:
        return {
            "accounts": self.accounts,
            "days": self.days,
            "seed": self.seed,
            "start": self.start.isoformat(),
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "heartbeat_s": self.heartbeat_s,
            "trace_split": self.trace_split,
            "attack_rates_per_100k_accounts_per_day": self.attack_rates.as_dict(),
            "countries": list(self.countries) if self.countries else None,
            "generated_titles": self.generated_titles,
            "new_releases_per_week": self.new_releases_per_week,
            "signup_rate_per_day": self.signup_rate_per_day,
            "trip_rate_per_day": self.trip_rate_per_day,
            "include_late_labels": self.include_late_labels,
        }
