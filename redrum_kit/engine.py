"""The engine: the one facade every front end (OSC, browser, CLI, MIDI) calls.

It owns the workspace, the device and (as the models arrive) model loading.
Front ends parse and validate their protocol, call a method here, and format
the answer; a `RedrumError` from here is a message for the user.

This first version serves the library; transform, layer, transcribe and
render join it with their models.
"""

from __future__ import annotations

import threading
from pathlib import Path

from redrum_kit import __version__
from redrum_kit.errors import RedrumError


def pick_device(requested: str = "auto") -> str:
    """'auto' -> 'cuda' when a CUDA GPU is usable, else 'cpu'."""
    import torch
    if requested not in ("auto", "cpu", "cuda"):
        raise RedrumError(f"unknown device {requested!r}; choose auto, cpu or cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RedrumError("--device cuda was asked for, but no CUDA GPU is available")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


class Engine:
    def __init__(self, home: Path | None = None, device: str = "auto"):
        self.device = pick_device(device)
        self._home = home
        self._library = None
        self._lock = threading.Lock()

    @property
    def library(self):
        with self._lock:  # opened once, on first use, by whichever thread asks first
            if self._library is None:
                from redrum_kit.library import Library
                self._library = Library(self._home)
            return self._library

    def ping(self) -> dict:
        return {"version": __version__, "device": self.device}

    def library_list(self, cls: str | None = None, kit: str | None = None) -> dict:
        return {"items": [o.to_json() for o in self.library.list(cls=cls or None, kit=kit or None)]}
