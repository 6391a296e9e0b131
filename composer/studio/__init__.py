"""The studio: a web page for songwriters (`composer studio`, the `ui` extra: Gradio).

- `session.Studio`: the work without the page (plan, edit, render with a preview a
  section, repaint, restyle, interpolate, loop, guide, daily song, history).
- `app.build_app` / `app.launch`: the Gradio page over it.
"""

from composer.studio.session import Entry, Studio

__all__ = ["Entry", "Studio"]
