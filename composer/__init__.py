"""composer: the long-form song composer (CLI, rendering, data, training, evaluation).

The Python API (each name loads lazily: `import composer` does not import torch):

    composer.plan(prompt, *, lyrics=None, duration=None, seed=0) -> structure.SongPlan
    composer.render(plan, *, seed=0, steps=None, codec=None, model=None, progress=True) -> Render
    composer.load_codec(path=None), composer.load_model(path=None)   # None: the bundled models
"""

import os as _os

__version__ = "0.1.0"

# librosa's first beat tracking compiles numba code for 30-45 s; keep what it compiles in one
# folder that outlives the process (warmed by `make install`: python -m composer.evaluate.warmup).
_os.environ.setdefault("NUMBA_CACHE_DIR", _os.path.join(_os.path.expanduser("~"), ".cache", "song-composer", "numba"))

__all__ = ["__version__", "plan", "render", "Render", "RenderOptions", "load_codec", "load_model"]


def plan(prompt: str = "", *, model=None, **options):
    """`structure.plan` with the bundled sentence encoder, which reads free prompt words
    ("joyful", "gloomy") as moods and genres, and the originality index of the model
    that will render it (`model`: a checkpoint folder or a loaded model; None: the
    bundled one), so no melody it hands on repeats a learnt melody for more than two
    bars. Options as `structure.plan`."""
    from composer.conditioning import embed_texts
    from structure.planner import plan as plan_song

    if "melody_check" not in options:
        options["melody_check"] = _melody_check(model)
    return plan_song(prompt, embed=embed_texts, **options)


def _melody_check(model):
    from composer.originality import bundled_index, lineage_indexes, melody_check

    if model is None:
        return melody_check(bundled_index())
    return melody_check(lineage_indexes(model))  # a folder is read without loading its weights


def __getattr__(name):
    if name in ("render", "Render", "RenderOptions"):
        from composer import rendering

        return getattr(rendering, name)
    if name in ("load_codec", "load_model"):
        from composer import models

        return getattr(models, name)
    raise AttributeError(name)
