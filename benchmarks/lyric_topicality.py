"""Do the writer's lyrics speak of the theme? The template writer's lines for 20 themes, each with
three seeds, written as the planner writes them (verse, chorus, verse, bridge of 7-syllable lines),
without and with `related` (each bank noun's nearness to the theme under the sentence encoder the
CLI loads, all-MiniLM-L6-v2, which leans the rhymes toward the theme).

    python benchmarks/lyric_topicality.py

Topicality: the mean cosine between each line's sentence embedding and the theme's (the same
encoder; lines of unrelated themes score about 0.1, a line that names the theme about 0.5).
Beside it, what the lean must not cost: lines within one syllable of their target, line ends
repeated within a song, and end-word pairs that are one word and its plural.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

THEMES = ["leaving home", "trains", "my mother's garden", "the sea at night", "winter in the city",
          "a summer romance", "losing a friend", "driving all night", "the old lighthouse", "falling in love again",
          "a small town", "the last dance", "fighting back", "rain on the window", "a letter never sent",
          "dreams of flying", "the harvest", "stars over the desert", "a broken promise", "coming back home"]


def main() -> None:
    import argparse

    import numpy as np
    from common import write_result

    import lyrics
    from composer.conditioning import embed_texts
    from lyrics.writer import SectionSpec, write
    from structure.planner import theme_nearness

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    specs = [SectionSpec("v1", "verse", [7] * 4), SectionSpec("c1", "chorus", [7] * 4),
             SectionSpec("v2", "verse", [7] * 4), SectionSpec("b1", "bridge", [7] * 4)]
    rows, samples = {"without": [], "with": []}, {}
    for theme in THEMES:
        prompt = f"a song about {theme}"
        theme_vector = embed_texts([theme])[0]
        related = theme_nearness(" ".join(lyrics.theme_words(prompt)), embed_texts)
        for seed in range(args.seeds):
            for name, lean in (("without", None), ("with", related)):
                sections = write(prompt, sections=specs, seed=seed, related=lean)
                lines = [line for section in sections for line in section.lines]
                ends = [lyrics.words(line)[-1].lower() for line in lines]
                cosine = float((embed_texts(lines) @ theme_vector).mean())
                rows[name].append({
                    "theme": theme, "seed": seed, "topicality": cosine,
                    "syllables_within_1": float(np.mean([abs(lyrics.count_syllables(line) - 7) <= 1 for line in lines])),
                    "repeated_ends": len(ends) - len(set(ends)),
                    "plural_pairs": sum(1 for a in set(ends) for b in set(ends) if b == a + "s"),
                })
                if seed == 0 and theme in ("trains", "the sea at night", "my mother's garden"):
                    samples.setdefault(theme, {})[name] = [" / ".join(s.lines) for s in sections]

    def mean(name: str, key: str) -> float:
        return round(float(np.mean([row[key] for row in rows[name]])), 4)

    table = {key: {name: mean(name, key) for name in rows}
             for key in ("topicality", "syllables_within_1", "repeated_ends", "plural_pairs")}
    themes_better = sum(
        np.mean([r["topicality"] for r in rows["with"] if r["theme"] == t])
        > np.mean([r["topicality"] for r in rows["without"] if r["theme"] == t]) for t in THEMES)
    write_result("lyric_topicality", {"themes": len(THEMES), "seeds": args.seeds, "table": table,
                                      "themes_more_topical_with_the_lean": int(themes_better),
                                      "samples": samples, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
