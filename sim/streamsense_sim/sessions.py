"""Playback sessions as columns: QoE, then start / heartbeat / stop events.

The period is cut like a real export: a session still playing at the period's end keeps its
start and the heartbeats sent before the cut, and has no ``playback_stop`` in the file. Such
sessions are listed in the manifest (``period_end.open_sessions``, with the stop the session
would have had, as ground truth); consumers must treat a missing stop of a session started
less than its length before the cut as "still playing", not as abandoned. The viewing-history
export weighs an open session by what was watched up to the cut."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from streamsense_sim.catalogue import Catalogue
from streamsense_sim.qoe import CHUNK_S, NETWORK_TYPES, PlayerResult, ThroughputModel, play
from streamsense_sim.render import Batch, Fragments, device_json, iso, iso1, new_ids, truth_line
from streamsense_sim.traps import trap_line
from streamsense_sim.world import DEVICE_TYPES

#: What the player holds when playback starts: the startup chunk.
START_BUFFER_S = float(CHUNK_S)


@dataclass
class Sessions:
    t_start: np.ndarray  # int64 ms
    account: list[str]
    profile: list[str]
    title: np.ndarray  # catalogue index
    device_id: list[str]
    device_type: np.ndarray  # index into DEVICE_TYPES
    city: np.ndarray
    asn: np.ndarray  # registry index
    ip: list[str]
    net: np.ndarray  # index into NETWORK_TYPES
    start_pos: np.ndarray  # content seconds
    watched: np.ndarray  # content seconds intended
    audio: list[str]
    subtitles: list[str]
    attack_type: list[str | None]
    attack_id: list[str | None]
    trap: np.ndarray  # legit trap bit mask (traps.py), 0 = none

    def __len__(self) -> int:
        return len(self.t_start)

    def take(self, idx: np.ndarray) -> Sessions:
        out: dict[str, Any] = {}
        ids = idx.tolist()
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v[idx] if isinstance(v, np.ndarray) else [v[i] for i in ids]
        return Sessions(**out)

    @staticmethod
    def concat(parts: list[Sessions]) -> Sessions:
        out: dict[str, Any] = {}
        for f in fields(Sessions):
            vals = [getattr(p, f.name) for p in parts]
            if isinstance(vals[0], np.ndarray):
                out[f.name] = np.concatenate(vals)
            else:
                out[f.name] = [x for v in vals for x in v]
        return Sessions(**out)


def simulate_player(
    s: Sessions, rng: np.random.Generator, throughput: ThroughputModel, interval_s: int, country_factor: np.ndarray
) -> PlayerResult:
    h = int(np.max(np.floor(s.watched / interval_s))) if len(s) else 0
    startup, series, latency = throughput.sample(rng, s.net, h, interval_s, country_factor)
    return play(startup, series, latency, s.device_type, s.watched, interval_s)


def render_sessions(
    s: Sessions,
    p: PlayerResult,
    catalogue: Catalogue,
    frags: Fragments,
    rng: np.random.Generator,
    interval_s: int,
    batch: Batch,
    cut_ms: int,
) -> None:
    """Render every session's events into the batch; ``cut_ms`` is the period's end."""
    n = len(s)
    if n == 0:
        return
    session_ids = new_ids(rng, n, "ses-")
    title_ids = [catalogue.title_ids[i] for i in s.title.tolist()]
    devtype = [DEVICE_TYPES[i] for i in s.device_type.tolist()]
    nettype = [NETWORK_TYPES[i] for i in s.net.tolist()]
    asn = s.asn.tolist()
    city = s.city.tolist()
    common = [
        f'"session_id":"{sid}","profile_id":"{pr}","title_id":"{ti}"'
        for sid, pr, ti in zip(session_ids, s.profile, title_ids, strict=True)
    ]
    dev = [device_json(d, t) for d, t in zip(s.device_id, devtype, strict=True)]
    netw = [frags.network(ip, a, c) for ip, a, c in zip(s.ip, asn, city, strict=True)]
    attacks = [(a, b) if a is not None and b is not None else None for a, b in zip(s.attack_type, s.attack_id, strict=True)]
    traps = s.trap.tolist()

    # playback_start, with what the player measured while fetching the startup chunk: the
    # startup window's throughput (the window right before the first heartbeat's), the startup
    # bitrate, no stall (the wait is startup_ms) and that one chunk in the buffer.
    ids = new_ids(rng, n)
    when = iso(s.t_start)
    su_kbps = np.round(p.startup_kbps, 1).tolist()
    lines = [
        f'{{"version":1,"event_id":"{e}","occurred_at":"{w}","account_id":"{acc}","type":"playback_start",'
        f'"payload":{{{c},"device":{d},"network":{nw},"network_type":"{nt}","startup_ms":{su},'
        f'"audio_language":"{au}","subtitle_language":"{sb}","qoe":{{"throughput_kbps":{k!r},'
        f'"bitrate_kbps":{b!r},"rebuffer_ms":0,"buffer_s":{START_BUFFER_S!r}}}}}}}'
        for e, w, acc, c, d, nw, nt, su, au, sb, k, b in zip(
            ids, when, s.account, common, dev, netw, nettype, p.startup_ms.tolist(), s.audio, s.subtitles,
            su_kbps, p.startup_bitrate.tolist(), strict=True,
        )
    ]  # fmt: skip
    truth = [
        truth_line(e, atk, "playback_start", acc, w) if atk else None
        for e, atk, acc, w in zip(ids, attacks, s.account, when, strict=True)
    ]
    batch.add(s.t_start, lines, truth, "playback_start", _traps(ids, traps, "playback_start", s.account, when))

    # playback_heartbeat
    mask = np.arange(p.beat_kbps.shape[1])[None, :] < p.n_beats[:, None]
    ss, hh = np.nonzero(mask)
    if len(ss):
        t = s.t_start[ss] + p.beat_wall_ms[ss, hh]
        pos = np.round(s.start_pos[ss] + (hh + 1) * float(interval_s), 1)
        kbps = np.round(p.beat_kbps[ss, hh], 1)
        br = p.beat_bitrate[ss, hh]
        rb = p.beat_rebuffer_ms[ss, hh]
        bf = p.beat_buffer_s[ss, hh]
        ids = new_ids(rng, len(ss))
        when = iso(t)
        sl = ss.tolist()
        # A session's fixed parts are joined once, not once per heartbeat.
        head = [
            f'","account_id":"{acc}","type":"playback_heartbeat","payload":{{{c},"position_s":'
            for acc, c in zip(s.account, common, strict=True)
        ]
        mid = [
            f',"device":{d},"network":{nw},"network_type":"{nt}","qoe":{{"throughput_kbps":'
            for d, nw, nt in zip(dev, netw, nettype, strict=True)
        ]
        lines = [
            f'{{"version":1,"event_id":"{e}","occurred_at":"{w}{head[i]}{ps!r}{mid[i]}{k!r},'
            f'"bitrate_kbps":{b!r},"rebuffer_ms":{r},"buffer_s":{f!r}}}}}}}'
            for e, w, i, ps, k, b, r, f in zip(
                ids, when, sl, pos.tolist(), kbps.tolist(), br.tolist(), rb.tolist(), bf.tolist(), strict=True
            )
        ]
        truth = [
            truth_line(e, attacks[i], "playback_heartbeat", s.account[i], w) if attacks[i] else None  # type: ignore[arg-type]
            for e, i, w in zip(ids, sl, when, strict=True)
        ]
        trap_rows = [
            trap_line(e, traps[i], "playback_heartbeat", s.account[i], w) if traps[i] else None
            for e, i, w in zip(ids, sl, when, strict=True)
        ]
        batch.add(t, lines, truth, "playback_heartbeat", trap_rows)

    # playback_stop
    t = s.t_start + p.stop_wall_ms
    ids = new_ids(rng, n)
    when = iso(t)
    watched = np.round(p.watched_s, 1).tolist()
    duration = catalogue.duration_s[s.title].tolist()
    lines = [
        f'{{"version":1,"event_id":"{e}","occurred_at":"{w}","account_id":"{acc}","type":"playback_stop",'
        f'"payload":{{{c},"watched_s":{ws!r},"title_duration_s":{du!r},"device":{d},"network":{nw}}}}}'
        for e, w, acc, c, ws, du, d, nw in zip(ids, when, s.account, common, watched, duration, dev, netw, strict=True)
    ]
    truth = [
        truth_line(e, atk, "playback_stop", acc, w) if atk else None
        for e, atk, acc, w in zip(ids, attacks, s.account, when, strict=True)
    ]
    batch.add(t, lines, truth, "playback_stop", _traps(ids, traps, "playback_stop", s.account, when))

    # Sessions still playing at the cut: known so far = the heartbeats sent before it.
    stop_t = t
    sent = np.arange(p.beat_wall_ms.shape[1])[None, :] < p.n_beats[:, None]
    beats_before = (sent & (s.t_start[:, None] + p.beat_wall_ms < cut_ms)).sum(axis=1)
    open_ = (s.t_start < cut_ms) & (stop_t >= cut_ms)
    known = np.where(open_, np.minimum(beats_before * float(interval_s), p.watched_s), p.watched_s)
    for i in np.flatnonzero(open_).tolist():
        nb = int(beats_before[i])
        batch.open_sessions.append({
            "session_id": session_ids[i], "account_id": s.account[i], "profile_id": s.profile[i],
            "title_id": title_ids[i], "started_at": iso1(int(s.t_start[i])),
            "last_heartbeat_at": iso1(int(s.t_start[i] + p.beat_wall_ms[i, nb - 1])) if nb else None,
            "position_s_at_cut": round(float(s.start_pos[i] + nb * interval_s), 1),
            "would_stop_at": iso1(int(stop_t[i])), "attack_type": s.attack_type[i],
        })  # fmt: skip
    frac = np.clip(known / catalogue.duration_s[s.title], 0.0, 1.0)
    batch.views.extend(
        zip(s.t_start.tolist(), s.profile, title_ids, np.round(frac, 3).tolist(), strict=True)
    )


def _traps(ids: list[str], traps: list[int], kind: str, account: list[str], when: list[str]) -> list[str | None]:
    return [
        trap_line(e, m, kind, a, w) if m else None
        for e, m, a, w in zip(ids, traps, account, when, strict=True)
    ]
