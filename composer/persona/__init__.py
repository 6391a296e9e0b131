"""The archive persona: learn an artist from their archive, then write a song a day.

- `build.build_persona`: check, analysis, priors, lyric model, diffusion fine-tune, card.
- `daily.daily`: the song of a date, drawn from the persona and rendered by its model.
- `demo.make_demo_archive`: a demo archive from the recorded corpus, with made-up lyrics
  and metadata (clearly marked), so the whole path runs offline.
"""

from composer.persona.build import build_persona
from composer.persona.daily import daily, draw_song, load_persona

__all__ = ["build_persona", "daily", "draw_song", "load_persona"]
