"""composer: the long-form song composer (CLI, rendering, data, provenance)."""

__version__ = "0.1.0"

__all__ = ["__version__", "render", "Render"]


def __getattr__(name):  # lazy: `import composer` must not import torch
    if name in ("render", "Render"):
        from composer import renderer
        return getattr(renderer, name)
    raise AttributeError(name)
