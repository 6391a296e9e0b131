"""Model cards: what a trained model learnt from (licences, consent), how, and how well."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import torch


def machine_summary(device: torch.device | None = None) -> dict:
    """The CPU, threads, torch and Python of this machine, and the GPU when training ran on one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "python": sys.version.split()[0]}
    if device is not None and device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["gpus"] = int(os.environ.get("WORLD_SIZE", "1"))
    return out


def loss_curve(log_path: Path, points: int = 12) -> list[str]:
    """Markdown table rows of the training log: loss at ~`points` steps, and every validation."""
    if not log_path.is_file():
        return []
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    validation = {r["step"]: r["validation"] for r in rows if "validation" in r}
    keep = train[:: max(1, len(train) // points)] + train[-1:] if train else []
    lines = ["| step | minutes | training loss | validation |", "| --- | --- | --- | --- |"]
    seen = set()
    for r in keep:
        if r["step"] in seen:
            continue
        seen.add(r["step"])
        nearest = max((s for s in validation if s <= r["step"]), default=None)
        shown = json.dumps({k: round(v, 4) for k, v in validation[nearest].items() if isinstance(v, float)}) \
            if nearest is not None else ""
        lines.append(f"| {r['step']} | {r.get('minutes', '')} | {r['loss']:.4f} | {shown} |")
    return lines


def write_model_card(directory: Path, kind: str, training: dict, *, extra: dict | None = None,
                     log_path: Path | None = None) -> None:
    """MODEL_CARD.md: what the model is, the exact command and seed, data licences, loss curve, metrics."""
    lines = [f"# {kind[:1].upper()}{kind[1:]} model", "",  # a run of its own, not the bundled one until it is copied there
             f"Trained here with `{training['command']}` (seed {training['seed']}).", "",
             "## Training data", "",
             f"- datasets: {', '.join(map(str, training.get('data', [])))}",
             f"- files: {training.get('files')} training, {training.get('validation_files')} validation",
             "- licences: " + ", ".join(f"{k} ({v} files)" for k, v in training.get("licences", {}).items()),
             *(["- consent: " + ", ".join(f"{k} ({v} files)" for k, v in sorted(training["consents"].items()))
                + " (a licence grant is the licence's permission, not the artist's opt-in)"]
               if training.get("consents") else []),
             "- every file had an allowed licence and opt-in consent or a licence grant (`composer data check`)", "",
             "## Training", "",
             f"- steps: {training.get('steps')}, wall time: {training.get('minutes')} minutes",
             f"- machine: {json.dumps(training.get('machine', {}))}", "",
             "## Validation metrics", "", "```", json.dumps(training.get("validation", {}), indent=2), "```", ""]
    if training.get("originality"):
        o = training["originality"]
        t = o.get("thresholds", {})
        lines += ["## Originality index", "",
                  f"- `originality.json` + `originality.safetensors`: {o.get('files')} files, {o.get('windows')} "
                  f"audio windows, {o.get('melodies')} melodies (data identity {o.get('data_identity')})",
                  f"- thresholds: audio similarity {t.get('audio')} "
                  f"({'calibrated on ' + str(t.get('heldout_excerpts')) + ' held-out excerpts' if t.get('calibrated') else 'uncalibrated'}), "
                  f"melody {t.get('melody_bars')} bars, chords {t.get('chord_bars')} bars",
                  "- consent withdrawn since training: run `composer doctor --model DIR` (it reads the datasets' "
                  "revocations.jsonl)", ""]
    curve = loss_curve(log_path) if log_path else []
    if curve:
        lines += ["## Loss curve", "", *curve, ""]
    if training.get("notes"):
        lines += ["## Notes", "", training["notes"], ""]
    if extra:
        lines += ["## Config", "", "```json", json.dumps(extra, indent=2, default=str), "```", ""]
    # imported here: composer.data.audio needs soundfile, which timing training on a bare GPU machine does not
    from composer.data.audio import write_text_atomic

    write_text_atomic(directory / "MODEL_CARD.md", "\n".join(lines))
