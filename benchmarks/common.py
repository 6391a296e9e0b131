"""Shared helpers for benchmarks: machine description and JSON output."""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    from composer.train.cards import machine_summary

    return {**machine_summary(), "cores": os.cpu_count(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def write_result(name: str, data: dict, out: str | None = None) -> Path:
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"benchmark": name, "machine": machine(), **data}, indent=2))
    tmp.replace(path)
    print(json.dumps(data, indent=2))
    return path


def default_steps() -> int:
    """The sampler steps `composer render` uses by default (what the benchmarks measure)."""
    from composer.rendering.options import RenderOptions

    return RenderOptions().steps


def render_settings(options, tags: dict | None = None) -> dict:
    """The start and guidance a render with `options` uses for a plan with `tags` (what the
    renderer decides when they are left to it), for the result's JSON."""
    from types import SimpleNamespace

    resolved = options.for_plan(SimpleNamespace(tags=tags or {}))
    return {"from_guide": resolved.from_guide, "guidance": resolved.guidance_weights}
