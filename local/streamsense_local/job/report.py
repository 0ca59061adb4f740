"""Collect the report's sections and write it: a text summary on the terminal, report.json
(stable keys: section -> headline figures) and report.html with every table and plot."""

from __future__ import annotations

import html
import importlib
import json
import pkgutil
import time
import traceback
from pathlib import Path
from typing import Any

from streamsense_local.job import glance
from streamsense_local.job import sections as sections_pkg
from streamsense_local.job.sections import JobContext, Section

#: Sections in report order; modules added to sections/ later are appended in name order.
ORDER = ("fraud", "accounts", "recs", "cache", "qoe", "delivery", "content", "platform")


def collect(ctx: JobContext) -> list[Section]:
    names = [m.name for m in pkgutil.iter_modules(sections_pkg.__path__)]
    ordered = [n for n in ORDER if n in names] + sorted(n for n in names if n not in ORDER)
    out: list[Section] = []
    for name in ordered:
        tic = time.perf_counter()
        module = importlib.import_module(f"streamsense_local.job.sections.{name}")
        try:
            section = module.collect(ctx)
        except Exception as exc:  # one broken section must not hide the others
            section = Section(f"{name}: failed", notes=[f"{type(exc).__name__}: {exc}", traceback.format_exc()[-2000:]])
        if section is not None:
            out.append(section)
        ctx.timings[f"report_{name}_s"] = time.perf_counter() - tic
    # First in the report: the headline figures next to the benchmarks' (a comparison only).
    return [glance.section(out), *out]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:,.1f}"
    return "" if v is None else str(v)


def _print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [[_fmt(v) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    print(f"  {title}")
    print("    " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in cells:
        print("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def write(out: Path, sections: list[Section], timings: dict[str, float], *, notes: list[str], state: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "inputs": notes,
        "sections": {s.title: s.headline for s in sections},
        "state": state,
    }
    (out / "report.json").write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    for s in sections:
        print(f"\n== {s.title}")
        for k, v in s.headline.items():
            print(f"  {k}: {_fmt(v)}")
        for t in s.tables:
            _print_table(t.title, t.header, t.rows)
        for n in s.notes:
            print(f"  note: {n.splitlines()[0] if n else n}")
    print("\ntimings: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    (out / "report.html").write_text(_html(sections, result, out))
    return result


def _html(sections: list[Section], result: dict[str, Any], out: Path) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>streamsense run report</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "font-size:13px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
        "img{max-width:100%;border:1px solid #eee;margin:.5em 0}.note{color:#555;font-size:13px}</style>",
        "</head><body><h1>streamsense: run report</h1>",
        "<h2>Inputs</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result["inputs"]) + "</ul>",
        "<p class='note'>timings (s): " + html.escape(", ".join(f"{k} {v}" for k, v in result["timings_s"].items())) + "</p>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.headline:
            parts.append("<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in s.headline.items()) + "</table>")
        for t in s.tables:
            parts.append(f"<h3>{html.escape(t.title)}</h3><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.header) + "</tr>")
            parts.extend("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in t.rows)
            parts.append("</table>")
        for p in s.plots:
            parts.append(f"<img src='{html.escape(str(p.relative_to(out)))}' alt='{html.escape(p.stem)}'>")
        for n in s.notes:
            parts.append(f"<p class='note'>{html.escape(n)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
