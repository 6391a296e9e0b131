"""The studio in a real browser: Debian's Chromium driven by Playwright (pytest-playwright),
against `composer studio` started on a free port with tiny random models."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio", reason="the studio needs the ui extra (pip install .[ui]); make test installs it")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """The system Chromium (no browser download); autoplay, as after a click on Render."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio(tiny_models, tmp_path_factory):
    """(url, out folder) of a running `composer studio` with the tiny models."""
    codec_dir, model_dir = tiny_models
    out = tmp_path_factory.mktemp("studio") / "out"
    port = _free_port()
    system_tmp = out.parent / "tmp"  # the studio's TMPDIR as it starts: it must stay empty
    system_tmp.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TMPDIR": str(system_tmp)}
    log = open(out.parent / "studio.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "composer", "studio", "--port", str(port), "--out", str(out),
                                "--model", str(model_dir), "--codec", str(codec_dir), "--steps", "2"],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError("the studio did not start:\n" + (out.parent / "studio.log").read_text()) from None
            time.sleep(0.5)
    yield url, out
    process.terminate()
    process.wait(timeout=20)
    log.close()


def _edit_cell(page, row: int, col: int, value: str) -> None:
    """Type a value into a table cell as a user does, once its editor is open: keys pressed before
    it had focus went elsewhere, and the typed value then joined the old one ("2" + "4" = 24 bars;
    a CI run on a loaded machine)."""
    cell = page.locator(f"#plan-table [data-testid='cell-{row}-{col}']")
    cell.dblclick()
    editor = cell.locator("input, textarea").first
    editor.wait_for(state="visible")
    page.wait_for_function("(cell) => cell.contains(document.activeElement) && document.activeElement.matches('input, textarea')",
                           arg=cell.element_handle())
    editor.fill(value)
    editor.press("Enter")


def _song_audio(page, url: str) -> tuple[np.ndarray, int]:
    """The song the player plays, fetched as the browser fetches it."""
    src = page.locator("#player audio.song").get_attribute("src")
    data = urllib.request.urlopen(url.rstrip("/") + src).read()
    audio, rate = sf.read(io.BytesIO(data), dtype="int16")
    return audio, rate


def _duration(page) -> float:
    return page.evaluate("""async () => {
        const a = document.querySelector('#player audio.song');
        if (!(a.duration > 0)) await new Promise(r => a.addEventListener('loadedmetadata', r, {once: true}));
        return a.duration; }""")


def test_write_edit_render_repaint_and_a_broken_upload(studio, page, tmp_path):
    url, out = studio
    page.set_default_timeout(120_000)
    page.goto(url)
    page.fill("#prompt textarea", "folk song about rivers, 120 bpm, in A minor")
    page.fill("#duration input", "14")
    page.click("#plan")
    page.wait_for_selector("#timeline .plan-summary")
    planned = float(page.locator("#timeline .plan-summary").get_attribute("data-duration"))
    bars = int(page.locator("#plan-table [data-testid='cell-0-2']").inner_text())

    # one section two bars longer: the plan (and its timeline) follow, checked as any plan is
    _edit_cell(page, 0, 2, str(bars + 2))
    page.wait_for_function(f"document.querySelector('#timeline .plan-summary').dataset.duration != '{planned:.4f}'")
    edited = float(page.locator("#timeline .plan-summary").get_attribute("data-duration"))
    assert edited == pytest.approx(planned + 2 * 4 * 0.5, abs=1e-3)  # 2 bars of 4 beats at 120 BPM
    assert "valid" in page.inner_text("#plan-message .studio-ok")
    # the table shows the edited plan: the section's chords cycled to its new length
    page.wait_for_function(f"document.querySelector(\"#plan-table [data-testid='cell-0-3']\").innerText"
                           f".split('|').length == {bars + 2}")
    # a bad song field is named next to the fields, and the plan stays as it was
    key = page.input_value("#key textarea")
    page.fill("#key textarea", "H major")
    page.locator("#key textarea").press("Enter")
    page.wait_for_selector("#fields-message .studio-error")
    assert page.inner_text("#fields-message .studio-error").startswith("key:")  # not the busy overlay
    assert float(page.locator("#timeline .plan-summary").get_attribute("data-duration")) == pytest.approx(edited)
    page.fill("#key textarea", key)
    page.locator("#key textarea").press("Enter")
    page.wait_for_function("!document.querySelector('#fields-message .studio-error')")
    page.wait_for_timeout(300)  # the page settles (a second, late answer to the edit changes nothing)

    # render: each section reaches the page while the rest renders, then the song plays in full
    page.click("#render")
    page.wait_for_selector("#player audio.song")
    assert int(page.evaluate("(document.querySelector('#player [data-delivered]') || {dataset: {}}).dataset.delivered || '0'")) >= 1
    assert _duration(page) == pytest.approx(edited, abs=0.05)
    assert page.locator("#player .markers button").count() == page.locator("#timeline .timeline div").count()
    line = page.evaluate("""() => {
        const li = document.querySelector('#player .lines li');
        if (!li) return null;
        const a = document.querySelector('#player audio.song');
        a.currentTime = parseFloat(li.dataset.start) + 0.01;
        a.dispatchEvent(new Event('timeupdate'));
        return li.textContent; }""")
    assert line and page.inner_text("#player .lyric-now") == line
    for name in ("song.wav", "song.flac", "song.mid", "plan.json", "report.json"):
        assert page.locator(f"#downloads a[download='{name}']").count() == 1
    before, rate = _song_audio(page, url)
    first = json.loads((out / "history.json").read_text())[-1]["folder"]
    # measured against its plan after it is playable (as `composer render` measures it), and its lead sheet
    page.wait_for_function("document.querySelector('#status').innerText.includes('tempo')")
    page.wait_for_selector("#downloads a[download='lead_sheet.musicxml']")
    report = json.loads((out / first / "report.json").read_text())
    assert report["metrics"]["tempo"]["planned_bpm"] == 120
    assert report["options"]["from_guide"] == 0.7 and report["guide"]["strength"] == 0.7  # the slider's default

    # repaint one section: a new folder in the history, every other section's samples unchanged
    page.get_by_role("tab", name="Edit").click()
    target = report["sections"][1]
    page.locator("#repaint-section input").click()
    page.get_by_role("option", name=target["name"], exact=True).click()
    page.click("#repaint")
    page.wait_for_function(f"document.querySelector('#player audio.song').dataset.folder != '{first}'")
    after, _ = _song_audio(page, url)
    assert after.shape == before.shape
    history = json.loads((out / "history.json").read_text())
    repainted = json.loads((out / history[-1]["folder"] / "report.json").read_text())["repaints"][-1]
    lo, hi = repainted["samples"]
    # the section, the decoder's reach, the voice's breath before it and its echo (1.2 s) after it
    assert target["start"] - 0.6 <= lo / rate and hi / rate <= target["end"] + 0.6 + 1.2
    # ... and the sections that repeat it (the chorus is new everywhere); nothing else
    spans = [(lo, hi), *[tuple(r) for r in repainted.get("repeat_samples", [])]]
    changed = np.nonzero(np.any(before != after, axis=-1) if before.ndim > 1 else before != after)[0]
    assert len(changed) > 0 and all(any(a <= c < b for a, b in spans) for c in changed)
    assert [h["kind"] for h in history] == ["render", "repaint"]

    # a broken upload gets the CLI's one-line error, naming the file
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt not really audio")
    page.locator("#restyle-file input[type=file]").set_input_files(str(broken))
    page.fill("#restyle-prompt textarea", "genre=jazz")
    page.click("#restyle")
    page.wait_for_selector("#status .studio-error")
    message = page.inner_text("#status")
    assert "broken.wav" in message and "Traceback" not in message
    assert len(json.loads((out / "history.json").read_text())) == 2

    # a bad cell is named by row and column, the plan stays as it was, and Render refuses while the
    # table holds the refused edit (it rendered the plan before it, unsaid)
    page.get_by_role("tab", name="Write").click()
    _edit_cell(page, 0, 2, "0")
    page.wait_for_selector("#plan-message .studio-error")
    message = page.inner_text("#plan-message .studio-error")
    assert "row 1" in message and "bars" in message
    assert float(page.locator("#timeline .plan-summary").get_attribute("data-duration")) == pytest.approx(edited)
    page.click("#render")
    page.wait_for_function("document.querySelector('#status').innerText.includes('refused an edit')")
    assert len(json.loads((out / "history.json").read_text())) == 2

    # nothing outside the output folder: the uploads and every temporary file are inside it too
    assert sorted(p.name for p in out.parent.iterdir()) == ["out", "studio.log", "tmp"]
    assert not list((out.parent / "tmp").iterdir())
    assert any((out / ".studio" / "uploads").rglob("broken.wav"))


def test_a_fresh_page_plans_keys_move_the_chords_twice_and_the_history_is_there(studio, page):
    # the Length field showed 0 and refused every plan until it was cleared; a second key change
    # left the chords in the first new key; the history was empty on every page load
    url, out = studio
    page.set_default_timeout(120_000)
    page.goto(url)
    page.fill("#prompt textarea", "folk song about rivers, 120 bpm, in A minor")
    page.click("#plan")
    page.wait_for_selector("#plan-message .studio-ok")
    for new_key, tonic in (("C minor", "C"), ("D minor", "D")):
        page.fill("#key textarea", new_key)
        page.locator("#key textarea").press("Enter")
        page.wait_for_function(f"document.querySelector(\"#plan-table [data-testid='cell-0-3']\").innerText"
                               f".trim().startsWith('{tonic}')")
    chords = page.inner_text("#plan-table [data-testid='cell-0-3']").split("|")
    assert chords[0].strip() in ("Dm", "D"), chords  # the tonic chord of D minor, not C minor's
    # a page reloaded mid-render: the song is still measured and gets its lead sheet (it stayed
    # "pending" for ever: the measuring step ran only through the page)
    before = len(json.loads((out / "history.json").read_text()))
    page.click("#render")
    page.wait_for_selector("#progress *")
    page.reload()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        history = json.loads((out / "history.json").read_text())
        if len(history) > before and (out / history[-1]["folder"] / "lead_sheet.musicxml").is_file():
            break
        time.sleep(0.5)
    report = json.loads((out / history[-1]["folder"] / "report.json").read_text())
    assert report["metrics"] and report["originality"]["verdict"] != "pending"
    page.get_by_role("tab", name="History").click()
    folders = [e["folder"] for e in history]
    page.wait_for_function(f"document.querySelector('#history').innerText.includes('{folders[0]}')")
