"""The studio's HTML: the plan's timeline, per-section progress, the player (section markers,
the lyric line being sung, the sections played while the rest renders), downloads."""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import quote

KIND_COLOURS = {"intro": "#9db4c0", "verse": "#5c6b73", "pre-chorus": "#c2dfe3", "chorus": "#e07a5f",
                "post-chorus": "#f2cc8f", "bridge": "#81b29a", "solo": "#3d405b", "breakdown": "#b8b8d1",
                "drop": "#d62246", "hook": "#f4a261", "interlude": "#a8dadc", "outro": "#9db4c0"}

# Runs once per player element (Gradio's js_on_load); the element outlives every re-render of
# its HTML, so the clip queue and the listeners live on it.
PLAYER_JS = r"""
const stream = new Audio();
element._queue = []; element._seen = new Set(); element._job = null; element._starts = {};
element._clipStart = null;  // the song time of the clip playing
function playNext() {
  if (!stream.paused && !stream.ended) return;
  const next = element._queue.shift();
  if (!next) return;
  stream.src = next;
  element._clipStart = element._starts[next];
  stream.play().then(() => { element.dataset.streamed = (parseInt(element.dataset.streamed || '0') + 1); })
        .catch(() => { element.dataset.blocked = '1'; });
}
stream.addEventListener('ended', playNext);
function scan() {
  const song = element.querySelector('audio.song');
  const clips = element.querySelector('[data-clips]');
  if (song || !clips) {
    if (song && !stream.paused && element._clipStart != null && !song.dataset.resumedAt) {
      // the finished song carries on from where the preview was
      const at = element._clipStart + stream.currentTime;
      song.dataset.resumedAt = at;
      const resume = () => { song.currentTime = at; song.play().catch(() => {}); };
      if (song.readyState >= 1) resume(); else song.addEventListener('loadedmetadata', resume, {once: true});
    }
    if (!stream.paused) stream.pause();
    element._queue = []; element._clipStart = null;
    return;
  }
  if (clips.dataset.job !== element._job) {
    element._job = clips.dataset.job; element._seen = new Set(); element._queue = []; stream.pause();
  }
  const starts = JSON.parse(clips.dataset.starts || '[]');
  JSON.parse(clips.dataset.clips).forEach((url, i) => { element._starts[url] = starts[i]; });
  for (const url of JSON.parse(clips.dataset.clips)) {
    if (!element._seen.has(url)) {
      element._seen.add(url); element._queue.push(url);
      element.dataset.delivered = (parseInt(element.dataset.delivered || '0') + 1);  // sections delivered while rendering
    }
  }
  playNext();
}
setInterval(scan, 200);  // Gradio re-renders the HTML in place; look for new sections often
scan();
element.addEventListener('click', (event) => {
  const marker = event.target.closest('[data-seek]');
  if (marker) {
    const song = element.querySelector('audio.song');
    if (song) { song.currentTime = parseFloat(marker.dataset.seek); song.play().catch(() => {}); }
    return;
  }
  if (event.target.closest('.listen')) { stream.pause(); element._queue = []; }
}, true);
element.addEventListener('timeupdate', (event) => {
  if (!event.target.classList || !event.target.classList.contains('song')) return;
  const t = event.target.currentTime;
  let text = '';
  for (const line of element.querySelectorAll('.lines li')) {
    if (t >= parseFloat(line.dataset.start) && t < parseFloat(line.dataset.end)) { text = line.textContent; break; }
  }
  const now = element.querySelector('.lyric-now');
  if (now && now.textContent !== text) now.textContent = text;
  for (const marker of element.querySelectorAll('[data-seek]')) {
    marker.classList.toggle('current', t >= parseFloat(marker.dataset.seek) && t < parseFloat(marker.dataset.end));
  }
}, true);
"""

CSS = """
.timeline { display: flex; width: 100%; height: 2.6em; border-radius: 4px; overflow: hidden; margin: 0.3em 0; }
.timeline div { overflow: hidden; white-space: nowrap; font-size: 0.75em; color: #fff; padding: 0.2em 0.3em;
  border-right: 1px solid #fff; box-sizing: border-box; }
.timeline .repeat { background-image: repeating-linear-gradient(45deg, transparent 0 6px, rgba(255,255,255,.25) 6px 9px); }
.progress-row { display: grid; grid-template-columns: 9em 1fr 4em; gap: 0.5em; align-items: center; font-size: 0.85em; }
.progress-row .bar { background: #e5e5e5; height: 0.7em; border-radius: 3px; overflow: hidden; }
.progress-row .bar span { display: block; height: 100%; background: #e07a5f; }
.markers { position: relative; height: 1.8em; margin: 0.2em 0; }
.markers button { position: absolute; top: 0; font-size: 0.7em; padding: 0.1em 0.3em; border: 1px solid #999;
  border-radius: 3px; background: #f7f7f7; cursor: pointer; white-space: nowrap; }
.markers button.current { background: #e07a5f; color: #fff; }
.lyric-now { min-height: 1.6em; font-size: 1.2em; font-style: italic; }
.lines { display: none; }
.downloads a { margin-right: 0.8em; }
.studio-error { color: #b00020; }
"""


def file_url(path: Path) -> str:
    """Gradio's URL of a file inside an allowed folder (the mtime defeats stale caches)."""
    path = Path(path).resolve()
    return f"/gradio_api/file={quote(str(path))}?v={path.stat().st_mtime_ns}"


def _clock(seconds: float) -> str:
    """m:ss.s, rounded once (119.97 s is 2:00.0, not 1:60.0)."""
    tenths = int(round(seconds * 10))
    return f"{tenths // 600}:{tenths % 600 / 10:04.1f}"


def timeline_html(plan) -> str:
    """The sections drawn to scale (width = duration), repeats hatched."""
    if plan is None:
        return "<div class='timeline-empty'>Plan a song to see its form.</div>"
    total = plan.duration
    cells = []
    for section, (start, end) in zip(plan.sections, plan.section_times()):
        width = 100.0 * (end - start) / total
        title = f"{section.name}: {section.bars} bars, {_clock(start)}-{_clock(end)}"
        if section.repeat_of:
            title += f" (= {section.repeat_of})"
        cells.append(f"<div class='{'repeat' if section.repeat_of else ''}' data-section='{html.escape(section.name)}' "
                     f"style='width:{width:.3f}%;background:{KIND_COLOURS.get(section.kind, '#888')}' "
                     f"title='{html.escape(title)}'>{html.escape(section.name)}</div>")
    summary = (f"{html.escape(plan.title)}: {_clock(total)}, {plan.tempo_bpm:g} BPM, {plan.key}, "
               f"{plan.meter}, {len(plan.sections)} sections")
    return (f"<div class='plan-summary' data-duration='{total:.4f}'>{summary}</div>"
            f"<div class='timeline'>{''.join(cells)}</div>")


def progress_html(plan, made: int | None = None, total: int | None = None, current: str | None = None,
                  done: set[str] | None = None) -> str:
    """One bar a section: frames made so far (the renderer reports frames in song order)."""
    if plan is None:
        return ""
    done = done or set()
    rows = []
    times = plan.section_times()
    song = times[-1][1] if times else 1.0
    fraction_made = (made or 0) / total if total else 0.0
    for section, (start, end) in zip(plan.sections, times):
        if section.name in done or total and fraction_made * song >= end - 1e-6:
            share = 1.0
        elif total:
            share = min(1.0, max(0.0, (fraction_made * song - start) / max(end - start, 1e-6)))
        else:
            share = 0.0
        state = "done" if share >= 1.0 else ("rendering" if section.name == current else "")
        rows.append(f"<div class='progress-row' data-section='{html.escape(section.name)}' data-state='{state}'>"
                    f"<span>{html.escape(section.name)}</span><div class='bar'><span style='width:{100 * share:.1f}%'>"
                    f"</span></div><span>{100 * share:.0f}%</span></div>")
    return "".join(rows)


def preview_html(job: str, clips: list[Path], starts: list[float], plan) -> str:
    """While rendering: the sections made so far, played one after another as they come
    (`starts`: each clip's time in the song, so the finished song carries on from there)."""
    urls = [file_url(p) for p in clips]
    names = [p.stem.split("-", 1)[-1] for p in clips]
    status = (f"Playing the sections made so far while the song renders: {', '.join(names)}" if clips
              else "The first section plays as soon as it is made.")
    return (f"<div class='preview' data-clips='{html.escape(json.dumps(urls))}' "
            f"data-starts='{html.escape(json.dumps(starts))}' data-job='{html.escape(job)}'>"
            f"{html.escape(status)}</div>")


def player_html(folder: Path | None, report: dict | None = None, lyrics: list | None = None,
                audio_name: str = "song.wav") -> str:
    """The finished song: the audio, a marker a section (click to jump) and the line being sung."""
    if folder is None or not (Path(folder) / audio_name).is_file():
        return "<div class='player-empty'>No song yet.</div>"
    folder = Path(folder)
    duration = float((report or {}).get("duration") or 0.0) or 1.0
    markers = []
    for section in (report or {}).get("sections", []):
        left = 100.0 * section["start"] / duration
        markers.append(f"<button data-seek='{section['start']}' data-end='{section['end']}' "
                       f"style='left:{left:.3f}%' title='{html.escape(section['name'])} at {_clock(section['start'])}'>"
                       f"{html.escape(section['name'])}</button>")
    lines = "".join(f"<li data-start='{line['start']}' data-end='{line['end']}'>{html.escape(line['text'])}</li>"
                    for line in (lyrics or []))
    return (f"<audio class='song' controls preload='metadata' src='{file_url(folder / audio_name)}' "
            f"data-folder='{html.escape(folder.name)}' style='width:100%'></audio>"
            f"<div class='markers'>{''.join(markers)}</div><div class='lyric-now'></div><ol class='lines'>{lines}</ol>")


def downloads_html(files: list[Path]) -> str:
    if not files:
        return ""
    links = "".join(f"<a href='{file_url(p)}' download='{html.escape(p.name)}'>{html.escape(p.name)}</a>"
                    for p in files)
    return f"<div class='downloads'>Download: {links}</div>"


def message_html(text: str, *, error: bool = False) -> str:
    return f"<div class='{'studio-error' if error else 'studio-ok'}'>{html.escape(text)}</div>" if text else ""


def metrics_line(metrics: dict) -> str:
    """The evaluation in a few words: tempo, key, chords and repeats against the plan."""
    parts = []
    tempo, key, chords = metrics.get("tempo") or {}, metrics.get("key") or {}, metrics.get("chords") or {}
    if "estimated_bpm" in tempo:
        parts.append(f"tempo {tempo['estimated_bpm']:.0f} BPM")
    if "estimated" in key:
        parts.append(f"key heard {key['estimated']}")
    if "accuracy" in chords:
        parts.append(f"chords {100 * chords['accuracy']:.0f}% as planned")
    return ", ".join(parts) if parts else "measured (report.json)"
