"""The errors that mean "bad input": the CLI answers them in one line with exit code 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input; the message names the input and what is wrong."""


class RenderError(RuntimeError):
    """A render that must not be written (its audio is not finite, or silent): exit code 1."""


def bad_input_types() -> tuple[type[BaseException], ...]:
    """Every exception type that signals bad input, across the packages."""
    import autoencoder
    import diffusion
    from composer.data.audio import AudioError
    from lyrics.errors import LyricsError
    from structure.schema import PlanError

    return (InputError, AudioError, PlanError, LyricsError, autoencoder.CheckpointNotFound,
            diffusion.CheckpointNotFound)
