"""How the persona's lyric model chooses a line among its candidates: fluency against variety.

    python benchmarks/persona_lyric_choice.py --persona runs/demo_persona --temperatures 0,0.3,0.5,1,2

For each choice temperature T (composer.persona.lyric_model.CHOICE_TEMPERATURE; 0 always takes
the best-scored candidate), the same days of the persona are drawn, and their lines measured:
fluency (perplexity under a word-trigram model of the held-out songs' lyrics, as
`benchmarks/persona.py` measures it; the archive's other songs' own lines are the reference
row), the share of distinct lines, how the lines open (distinct 3-word openings, the most
common one's count, the total-variation distance of the openings to the archive's, and the
share of lines that open with the two words of an earlier line of their song), and
the rhyme schemes' total variation to the archive's. Writes persona_lyric_choice.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from common import lyric_judge, sung_lines, write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default="data/demo_archive")
    parser.add_argument("--persona", default="runs/demo_persona")
    parser.add_argument("--temperatures", default="0,0.3,0.5,1,2")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--out")
    args = parser.parse_args()

    from composer.data.metadata import read_metadata
    from composer.persona import lyric_model
    from composer.persona.daily import draw_song, load_persona
    from composer.persona.lyric_model import LyricModel, scheme_of, words
    from composer.persona.priors import total_variation
    from lyrics import parse

    rows = [r for r in read_metadata(Path(args.archive)) if r.problem is None and not r.fields.get("cut_into")]
    held, judge, others = lyric_judge(rows)

    def sections(texts):
        return [s for text in texts for s in parse(text or "") if not s.repeat_of and s.lines]

    archive_sections = sections(r.fields.get("lyrics") for r in rows)
    archive_lines = [line for s in archive_sections for line in s.lines]
    archive_openings = Counter(" ".join(words(line)[:3]) for line in archive_lines)
    archive_schemes = Counter((s.kind, scheme_of(s.lines)) for s in archive_sections)
    persona = load_persona(args.persona)
    persona.lyrics = LyricModel.train(others)  # a model of the other songs (`common.lyric_judge`)
    shipped, rows_out = lyric_model.CHOICE_TEMPERATURE, {}
    try:
        for temperature in (float(t) for t in args.temperatures.split(",")):
            lyric_model.CHOICE_TEMPERATURE = temperature
            days = [draw_song(persona, dt.date(2027, 1, 1) + dt.timedelta(days=k)) for k in range(args.days)]
            written = sections(d["lyrics"] for d in days)
            lines = [line for s in written for line in s.lines]
            openings = Counter(" ".join(words(line)[:3]) for line in lines)
            echoed = [sum(n - 1 for n in Counter(" ".join(words(line)[:2]) for s in sections([d["lyrics"]])
                                                 for line in s.lines).values()) for d in days]
            rows_out[f"{temperature:g}"] = {
                "fluency": round(judge.perplexity(lines), 2),
                "distinct_line_share": round(len(set(lines)) / max(1, len(lines)), 3),
                "distinct_openings": len(openings), "most_common_opening": openings.most_common(1),
                "openings_tv": round(total_variation(openings, archive_openings), 3),
                "rhyme_scheme_tv": round(total_variation(Counter((s.kind, scheme_of(s.lines)) for s in written),
                                                         archive_schemes), 4),
                "lines_opening_as_an_earlier_line_of_their_song": round(sum(echoed) / max(1, len(lines)), 3),
                "lines": len(lines)}
    finally:
        lyric_model.CHOICE_TEMPERATURE = shipped
    write_result("persona_lyric_choice", {
        "archive": args.archive, "days": args.days, "shipped_temperature": shipped,
        "archive_lines": {"fluency": round(judge.perplexity(sung_lines(r.fields.get("lyrics") for r in rows
                                                                       if r not in held)), 2),
            "distinct_openings": len(archive_openings), "most_common_opening": archive_openings.most_common(1),
            "lines": len(archive_lines)},
        "temperatures": rows_out}, args.out)


if __name__ == "__main__":
    main()
