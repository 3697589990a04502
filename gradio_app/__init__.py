"""The browser front end: `redrum serve` starts it beside OSC; `python -m gradio_app` alone."""

from gradio_app.app import build, launch

__all__ = ["build", "launch"]
