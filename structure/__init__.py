"""structure: the song plan and everything derived from it (no torch models here)."""

from structure.plan import Key, Note, PlanError, Section, SongPlan

__all__ = ["Key", "Note", "PlanError", "Section", "SongPlan", "plan", "controls", "arrange"]


def __getattr__(name):  # lazy: keep `import structure` light
    if name == "plan":
        from structure.planner import plan
        return plan
    if name == "controls":
        from structure.controls import controls
        return controls
    if name == "arrange":
        from structure.arrange import arrange
        return arrange
    raise AttributeError(name)
