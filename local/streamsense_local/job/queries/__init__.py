"""`query`: read what the functions wrote, after a run. Each module here exposes read functions
``(stack, key) -> dict`` over the local stack that `make run` saved (see ``job.snapshot``); the
CLI restores that state into a fresh local stack and calls them through ``QUERIES``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# query name -> (module, function, what the argument is)
QUERIES: dict[str, tuple[str, str, str]] = {
    "member": ("recs", "member", "a member (profile) id: ranked recommendations with reasons, delivery defaults"),
    "title": ("recs", "title", "a title id: similar titles"),
    "region": ("recs", "region", "a region (ISO country): trending titles"),
    "account": ("fraud", "account", "an account id: fraud decisions with reasons, open cases"),
    "site": ("cache", "site", "an edge site id: its latest cache-fill hints"),
    "segment": ("qoe", "segment", "a segment 'REGION/NETWORK/DEVICE': startup-bitrate and ABR hints"),
    "delivery": ("delivery", "member", "an account id: audio and subtitle defaults"),
    "variants": ("content", "title", "a title id: the artwork/trailer variant statistics and choice"),
}


# query name -> (tables, buckets) it reads: `query` restores only these into its stack (the
# saved run is ~160 MB of items; the whole of it takes minutes to load into moto).
READS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "member": (("recs",), ("models",)),
    "title": (("recs",), ("models",)),
    "region": (("recs",), ("models",)),
    "account": (("decisions", "cases"), ()),
    "site": (("cache",), ("hints",)),
    "segment": (("qoe",), ()),
    "delivery": (("recs",), ()),
    "variants": (("content",), ()),
}


def resolve(name: str) -> Callable[..., dict[str, Any]] | None:
    module_name, function, _ = QUERIES[name]
    try:
        module = importlib.import_module(f"streamsense_local.job.queries.{module_name}")
    except ModuleNotFoundError:
        return None
    fn: Callable[..., dict[str, Any]] = getattr(module, function)
    return fn
