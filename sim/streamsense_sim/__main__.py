"""`python -m streamsense_sim --accounts N --days D --seed S --out DIR [--data-dir ...]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

from streamsense_sim.config import ATTACK_TYPES, AttackRates, SimConfig
from streamsense_sim.core import Summary, write
from streamsense_sim.traps import TRAP_KINDS


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))


def print_summary(summary: Summary, wall_s: float) -> None:
    total = summary.events
    _table("events by type", ("type", "events", "share"), [
        (k, f"{v:,}", f"{v / max(total, 1):.2%}") for k, v in sorted(summary.events_by_type.items(), key=lambda kv: -kv[1])
    ] + [("total", f"{total:,}", "100.00%")])  # fmt: skip
    _table("attacks by type", ("attack", "attacks", "labeled events"), [
        (k, summary.attacks_by_type.get(k, 0), f"{summary.attack_events_by_type.get(k, 0):,}") for k in ATTACK_TYPES
    ])  # fmt: skip
    _table("legitimate traps (never labelled as attacks)", ("trap", "events"), [
        (k, f"{summary.trap_events_by_kind.get(k, 0):,}") for k in TRAP_KINDS
    ])  # fmt: skip
    plays = sum(summary.plays_by_country.values())
    members = sum(summary.members_by_country.values())
    _table("top countries", ("country", "members", "plays", "share of plays"), [
        (c, f"{summary.members_by_country.get(c, 0):,}", f"{n:,}", f"{n / max(plays, 1):.2%}")
        for c, n in summary.plays_by_country.most_common(12)
    ] + [(f"({len(summary.members_by_country)} countries)", f"{members:,}", f"{plays:,}", "")])  # fmt: skip
    _table("plays by device", ("device", "plays", "share"), [
        (d, f"{n:,}", f"{n / max(plays, 1):.2%}") for d, n in summary.plays_by_device.most_common()
    ])  # fmt: skip
    _table("plays by network", ("network", "plays", "share"), [
        (d, f"{n:,}", f"{n / max(plays, 1):.2%}") for d, n in summary.plays_by_network.most_common()
    ])  # fmt: skip
    print(f"\n{summary.events_by_type.get('impression', 0):,} home-row impressions; "
          f"{summary.open_sessions:,} sessions still playing at the period's end (no stop; listed in the manifest)")
    print(f"{total:,} events in {wall_s:.1f} s = {total / max(wall_s, 1e-9):,.0f} events/s"
          f" ({summary.late_labels} labels dated after the period)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streamsense_sim", description="Generate a labeled period of streamsense traffic.")
    p.add_argument("--accounts", type=int, default=10_000)
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--start", type=date.fromisoformat, default=SimConfig.start, help="first day (UTC), YYYY-MM-DD")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="team data (MovieLens catalogue, ABR traces); default $STREAMSENSE_DATA_DIR if it exists")  # fmt: skip
    p.add_argument("--no-data", action="store_true", help="ignore the team data even if present")
    p.add_argument("--heartbeat-s", type=int, default=300)
    p.add_argument("--trace-split", choices=("all", "train", "eval"), default="all")
    p.add_argument("--attack-scale", type=float, default=1.0, help="multiply every attack rate")
    for name in ATTACK_TYPES:
        p.add_argument(f"--rate-{name.replace('_', '-')}", type=float, default=None, metavar="PER_100K_PER_DAY")
    p.add_argument("--countries", default=None, help="comma-separated ISO codes for members' homes")
    p.add_argument("--no-late-labels", action="store_true", help="drop labels dated after the period")
    p.add_argument("--home-row-share", type=float, default=SimConfig.home_row_share,
                   help="share of sessions that start from the home page (impressions); 0 = none")  # fmt: skip
    p.add_argument("--no-traps", action="store_true",
                   help="no VPN members, carrier GeoIP noise, second homes or card renewals (trips and takeover victims stay)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    data_dir = args.data_dir
    if data_dir is not None and not args.no_data and not data_dir.is_dir():
        p.error(f"--data-dir {data_dir}: not a folder (the team data; or leave it out / --no-data)")
    if data_dir is None and not args.no_data and os.environ.get("STREAMSENSE_DATA_DIR"):
        candidate = Path(os.environ["STREAMSENSE_DATA_DIR"])
        data_dir = candidate if candidate.is_dir() else None
    if args.no_data:
        data_dir = None
    rates = AttackRates().scaled(args.attack_scale).as_dict()
    for name in ATTACK_TYPES:
        value = getattr(args, f"rate_{name}")
        if value is not None:
            rates[name] = value
    started = time.perf_counter()
    try:
        config = SimConfig(
            accounts=args.accounts, days=args.days, seed=args.seed, start=args.start, data_dir=data_dir,
            heartbeat_s=args.heartbeat_s, trace_split=args.trace_split, attack_rates=AttackRates(**rates),
            countries=tuple(c.strip().upper() for c in args.countries.split(",") if c.strip()) if args.countries is not None else None,
            include_late_labels=not args.no_late_labels, home_row_share=args.home_row_share,
        )  # fmt: skip
        if args.no_traps:
            config = replace(config, vpn_member_share=0.0, geoip_noise_share=0.0, second_home_share=0.0, card_expiry_share=0.0)
        summary, paths = write(config, args.out, progress=not args.no_progress)
    except ValueError as exc:  # a setting out of range: a usage error, not a traceback
        p.error(str(exc))
    except OSError as exc:  # the output folder cannot be written
        p.error(f"--out {args.out}: {exc.strerror or exc}")
    wall = time.perf_counter() - started
    # what the simulator actually used (a data dir without MovieLens or the ABR traces falls back)
    manifest = json.loads(paths["manifest"].read_text())
    catalogue, throughput = manifest["catalogue"]["source"], manifest["throughput_source"]
    print(f"catalogue: {'MovieLens from ' + str(data_dir) if catalogue == 'movielens' else 'generated'}; "
          f"throughput: {'ABR traces from ' + str(data_dir) if throughput == 'abr-traces' else 'parametric model'}")  # fmt: skip
    if data_dir is not None and (catalogue, throughput) != ("movielens", "abr-traces"):
        print(f"note: {data_dir} lacks {' and '.join(n for n, ok in (('movielens/ml-latest-small/movies.csv', catalogue == 'movielens'), ('abr/traces/<family>/', throughput == 'abr-traces')) if not ok)}; generated instead", file=sys.stderr)
    print_summary(summary, wall)
    for name, path in paths.items():
        print(f"{name:>16}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
