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
    # ---- legitimate false-positive traps (see ``traps``) ---------------------------------
    #: Members who run a commercial VPN on their portable devices (4%); each session on a
    #: phone, tablet or browser goes through it with ``vpn_use_p`` (GeoIP: the egress city).
    vpn_member_share: float = 0.04
    vpn_use_p: float = 0.6
    #: Accounts whose mobile carrier's GeoIP puts them at a regional gateway 150-600 km away.
    geoip_noise_share: float = 0.15
    #: Multi-stream accounts shared by a second household in another city (a student, a
    #: second residence), within the plan's stream limit.
    second_home_share: float = 0.03
    #: Share of monthly charges that hit an expired card: declined, then the member adds
    #: the renewed card from their own device (small verification charges, some declined).
    card_expiry_share: float = 0.028
    #: Share of takeover victims who, locked out by the attacker's password change, reset
    #: the password from their own device (the others keep failing to log in).
    victim_reset_share: float = 0.6
    # ---- artwork impressions --------------------------------------------------------------
    #: Share of legitimate sessions that start from the home page, where one personalized
    #: row of ``ROW_SLOTS`` titles is logged as impressions (0 = no impressions).
    home_row_share: float = 0.6

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
        # epoch-millisecond event times, account histories reaching back before the start and
        # calendar arithmetic all stay well inside these bounds
        if not date(1971, 1, 1) <= self.start or self.start.toordinal() + self.days > date(2200, 1, 1).toordinal():
            raise ValueError("start must be on or after 1971-01-01 and the period must end before 2200-01-01")
        for name, rate in self.attack_rates.as_dict().items():
            if not 0.0 <= rate < float("inf"):
                raise ValueError(f"attack rate {name} must be a finite number >= 0, not {rate}")
        if self.countries is not None and not self.countries:
            raise ValueError("countries: give at least one ISO code (or leave it out for the world)")
        for name in ("vpn_member_share", "vpn_use_p", "geoip_noise_share", "second_home_share",
                     "card_expiry_share", "victim_reset_share", "home_row_share"):  # fmt: skip
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")

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
            "vpn_member_share": self.vpn_member_share,
            "vpn_use_p": self.vpn_use_p,
            "geoip_noise_share": self.geoip_noise_share,
            "second_home_share": self.second_home_share,
            "card_expiry_share": self.card_expiry_share,
            "victim_reset_share": self.victim_reset_share,
            "home_row_share": self.home_row_share,
        }
