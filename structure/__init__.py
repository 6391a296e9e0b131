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

from structure.schema import Key, Note, PlanError, Section, SongPlan

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
