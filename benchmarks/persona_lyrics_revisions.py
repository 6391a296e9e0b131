"""How a persona's daily lyrics read under two revisions of the lyric model.

    python benchmarks/persona_lyrics_revisions.py --persona runs/demo_persona --old 53f792e

Trains the lyric model of `git show OLD:composer/persona/lyric_model.py` and of the working
tree on the same archive songs (all but the held-out ones, which judge them), draws the
same 50 days of the persona with each, and measures the daily lines as `benchmarks/persona.py`
does (fluency: perplexity under a word-trigram model of the held-out songs' lyrics; the
archive's other songs' own lines are the reference row), with a sample of each revision's
lyrics. Writes benchmarks/results/persona_lyrics_revisions.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from common import lyric_judge, sung_lines, write_result  # noqa: E402


def openings(lines: list[str]) -> dict:
    """How the lines begin across songs (days): the first three words' most common opening and its
    share, the five most common ones' share, and the share of distinct openings."""
    import re
    from collections import Counter

    counted = Counter(" ".join(re.findall(r"[\w']+", line.lower())[:3]) for line in lines)
    total = max(1, sum(counted.values()))
    top = counted.most_common(5)
    return {"lines": total, "most_common": top[0][0] if top else None,
            "most_common_share": round(top[0][1] / total, 3) if top else 0.0,
            "top5_share": round(sum(n for _, n in top) / total, 3), "distinct_share": round(len(counted) / total, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default="data/demo_archive")
    parser.add_argument("--persona", default="runs/demo_persona")
    parser.add_argument("--old", required=True, help="a git revision of the lyric model to compare with")
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--out")
    args = parser.parse_args()

    from composer.data.metadata import read_metadata
    from composer.persona import lyric_model as current
    from composer.persona.daily import draw_song, load_persona

    source = subprocess.run(["git", "show", f"{args.old}:composer/persona/lyric_model.py"], check=True,
                            capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "old_lyric_model.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("old_lyric_model", path)
        old = importlib.util.module_from_spec(spec)
        sys.modules["old_lyric_model"] = old  # dataclasses look their module up while it loads
        spec.loader.exec_module(old)
    if "openings" not in inspect.signature(old.LyricModel.write_section).parameters:  # before 2026-12-01
        write_section = old.LyricModel.write_section
        old.LyricModel.write_section = lambda self, kind, rng, openings=None, **kw: write_section(self, kind, rng, **kw)

    rows = [r for r in read_metadata(Path(args.archive)) if r.problem is None and not r.fields.get("cut_into")]
    held, judge, songs = lyric_judge(rows)  # songs: the other songs' lyrics, which both revisions learn
    persona = load_persona(args.persona)
    revisions = {}
    for name, module in ((args.old, old), ("working tree", current)):
        persona.lyrics = module.LyricModel.train(songs)
        days = [draw_song(persona, dt.date(2027, 1, 1) + dt.timedelta(days=k)) for k in range(args.days)]
        lines = sung_lines(d["lyrics"] for d in days)
        revisions[name] = {"fluency": round(judge.perplexity(lines), 2),
                           "distinct_line_share": round(len(set(lines)) / max(1, len(lines)), 3),
                           "openings": openings(lines),
                           "first_days": [{"title": d["title"], "lyrics": d["lyrics"]} for d in days[:2]]}
    write_result("persona_lyrics_revisions", {
        "archive": args.archive, "days": args.days, "held_out_songs": len(held),
        "archive_other_songs_fluency": round(judge.perplexity(sung_lines(r.fields.get("lyrics") for r in rows
                                                                         if r not in held)), 2),
        "archive_other_songs_openings": openings(sung_lines(r.fields.get("lyrics") for r in rows if r not in held)),
        "revisions": revisions,
        "what": "fluency: perplexity of the daily lines under a word-trigram model of the held-out songs' lyrics; "
                "openings: the lines' first three words across the days (or the archive's songs)"}, args.out)


if __name__ == "__main__":
    main()
