"""structure: the song plan and everything derived from it (no torch models here).

    structure.plan(prompt, *, lyrics=None, duration=None, seed=0) -> SongPlan
    structure.SongPlan.from_json(text) / .to_json()
    structure.controls(plan, frame_rate) -> np.ndarray[frames, C]
    structure.arrange(plan) -> pretty_midi.PrettyMIDI

Modules: `schema` (SongPlan), `planner` (plan), `frame_controls` (controls),
`arrangement` (arrange), `harmony`, `harmonise`, `melody`, `styles`, `prompt`,
`analysis`, `synth`, `export`. No module shares a name with a function above, so
`structure.plan` is always the function.
"""

import contextlib
import io
import logging
import os

from structure.schema import Key, Note, PlanError, Section, SongPlan


def load_fluidsynth():
    """pyfluidsynth, imported. Its import prints where it found libfluidsynth to stdout when
    the environment has CI set; that line would land in `composer ... --json` output and in
    anything reading our stdout, so it goes to the debug log instead."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        import fluidsynth
    if captured.getvalue().strip():
        logging.getLogger(__name__).debug("pyfluidsynth: %s", captured.getvalue().strip())
    return fluidsynth


if os.environ.get("CI"):
    # pretty_midi imports pyfluidsynth too: import it here, quietly, before anything in this
    # package imports pretty_midi.
    try:
        load_fluidsynth()
    except (ImportError, OSError):  # no FluidSynth: `composer doctor` and the guide say so
        pass

__all__ = ["Key", "Note", "PlanError", "Section", "SongPlan", "plan", "controls", "arrange"]


def __getattr__(name):  # lazy: keep `import structure` light
    if name == "plan":
        from structure.planner import plan
        return plan
    if name == "controls":
        from structure.frame_controls import controls
        return controls
    if name == "arrange":
        from structure.arrangement import arrange
        return arrange
    raise AttributeError(name)
