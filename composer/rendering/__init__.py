"""Rendering: the window loop, repeats and joins (`renderer`), the Dance Diffusion modes
(`modes`), the render folder (`folder`), provenance and loudness."""

from composer.rendering.options import RenderOptions
from composer.rendering.renderer import Render, render

__all__ = ["Render", "RenderOptions", "render"]
