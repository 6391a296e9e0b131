"""The singing voice: lyrics sung on the plan's melody.

`sing(plan, voice=..., seed=...)` gives the dry vocal (`Vocal`); `composer.rendering`
mixes it with the accompaniment. Parts: `phonemes` (words to sung phones), `score`
(phones placed on notes), `engine` (Flite and Festival, called as programs), `singer` (the WORLD
vocoder puts the spoken phones on the notes), `mix` (reverb, level, ducking), `voices`.
"""

from composer.voice.engine import EngineMissing
from composer.voice.singer import Vocal, sing
from composer.voice.voices import DEFAULT_VOICE, VOICES, Voice, get_voice

__all__ = ["DEFAULT_VOICE", "EngineMissing", "VOICES", "Vocal", "Voice", "get_voice", "sing"]
