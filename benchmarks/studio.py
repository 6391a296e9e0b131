"""Time to first sound in the studio, as a user sees it: `composer studio` with the bundled
models at default settings, driven in Debian's Chromium through Playwright.

For each song: type the prompt, Plan, then press Render and time (from the click) until
the first finished section reaches the page's player (playable) and until the whole song
is in the player. Also takes the page's screenshot for the README.

    python benchmarks/studio.py [--songs 2] [--seconds 180] [--screenshot docs/studio.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

PROMPTS = ["wistful folk song about trains, 96 bpm, in D minor", "upbeat pop song about summer nights, 118 bpm",
           "slow soul ballad about an old house, 72 bpm, in E flat major"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_song(page, k: int, args) -> dict:
    """Plan and render one song; seconds from the click on Render."""
    prompt = PROMPTS[k % len(PROMPTS)]
    before = page.inner_text("#timeline")
    page.fill("#prompt textarea", prompt)
    page.fill("#duration input", f"{args.seconds:g}")
    page.fill("#seed input", str(k))
    clock = time.monotonic()
    page.click("#plan")
    page.wait_for_function("(t) => document.querySelector('#timeline .plan-summary') && "
                           "document.querySelector('#timeline').innerText != t", arg=before)
    plan_seconds = time.monotonic() - clock
    planned = float(page.locator("#timeline .plan-summary").get_attribute("data-duration"))
    previous = page.evaluate("(document.querySelector('#player audio.song') || {dataset: {}}).dataset.folder || ''")
    page.wait_for_function("!document.querySelector('#status').innerText.includes('measuring')")  # the last job is over
    clock = time.monotonic()
    page.click("#render")
    page.wait_for_function("parseInt((document.querySelector('#player [data-delivered]') || "
                           "{dataset: {}}).dataset.delivered || '0') >= 1", polling=50)
    first = time.monotonic() - clock
    page.wait_for_function("(previous) => { const a = document.querySelector('#player audio.song'); "
                           "return a && a.dataset.folder && a.dataset.folder != previous; }", arg=previous, polling=100)
    done = time.monotonic() - clock
    delivered = int(page.evaluate("document.querySelector('#player [data-delivered]').dataset.delivered"))
    page.evaluate("document.querySelector('#player [data-delivered]').dataset.delivered = '0'")
    return {"prompt": prompt, "planned_seconds": planned, "plan_s": round(plan_seconds, 2),
            "first_section_playable_s": round(first, 2), "song_complete_s": round(done, 2),
            "sections_streamed": delivered, "real_time_factor": round(planned / done, 2)}


def _defaults() -> str:
    from composer.rendering.options import RenderOptions

    options = RenderOptions()
    return f"{options.steps} steps, voice {options.voice}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--songs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--screenshot", default=None, help="Save the page after the first render here.")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "composer", "studio", "--port", str(port), "--out",
                               str(work / "out")], stdout=open(work / "studio.log", "w"), stderr=subprocess.STDOUT,
                              env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    url = f"http://127.0.0.1:{port}/"
    clock = time.monotonic()
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if server.poll() is not None:
                raise SystemExit((work / "studio.log").read_text()) from None
            time.sleep(0.5)
    startup = time.monotonic() - clock
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required",
                                              "--mute-audio"])
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            page.set_default_timeout(240_000)
            page.goto(url)
            for k in range(args.songs):
                try:
                    rows.append(_one_song(page, k, args))
                except Exception:
                    page.screenshot(path=str(work.parent / "studio-bench-failed.png"), full_page=True)
                    print("failed; status:", page.inner_text("#status"), "; plan:", page.inner_text("#plan-message"),
                          (work / "studio.log").read_text()[-2000:], flush=True)
                    raise
                print(rows[-1], flush=True)
                if args.screenshot and k == 0:
                    page.screenshot(path=args.screenshot, full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    write_result("studio", {
        "what": f"composer studio, bundled models, default settings ({_defaults()}); times from the click "
                "on Render, seen in Chromium; the originality check and the evaluation run after the song is in "
                "the player (not inside song_complete_s)",
        "startup_s": round(startup, 2), "rows": rows,
        "goals": {"first_section_playable_s": 5.0, "song_complete_s_3min": 30.0},
        "first_section_playable_s_max": max(r["first_section_playable_s"] for r in rows),
        "song_complete_s_mean": round(sum(r["song_complete_s"] for r in rows) / len(rows), 2),
    }, args.out)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
