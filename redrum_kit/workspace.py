"""Where things live on disk.

- The workspace (`$REDRUM_HOME`, default: the platform's user data folder)
  holds the library database, normalised copies of oneshots, user kits,
  synthesised originals and renders.
- The presets folder (`presets/` beside the package, or `$REDRUM_PRESETS`)
  holds shipped kits, training configs and model checkpoints.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "redrum-kit"


def home() -> Path:
    """The workspace folder, created on first use."""
    env = os.environ.get("REDRUM_HOME")
    if env:
        root = Path(env).expanduser()
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Application Support" / APP
    elif os.name == "nt":
        root = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / APP
    else:
        root = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / APP
    root.mkdir(parents=True, exist_ok=True)
    return root


def presets_dir() -> Path:
    env = os.environ.get("REDRUM_PRESETS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "presets"


def models_dir() -> Path:
    """The shipped model checkpoints and their cards."""
    return presets_dir() / "models"


def model_folders() -> list[Path]:
    """Where checkpoints are looked for, first match wins: `$REDRUM_MODELS` (your own folder, e.g.
    retrained models) when set, then the shipped ones."""
    env = os.environ.get("REDRUM_MODELS")
    return [*([Path(env).expanduser()] if env else []), models_dir()]


def model_file(name: str) -> Path:
    """A checkpoint by file name: from the first of `model_folders()` that holds one of that name,
    else the shipped one."""
    return next((d / name for d in model_folders() if (d / name).is_file()), models_dir() / name)


HYDROGEN_DRUMKITS = Path("/usr/share/hydrogen/data/drumkits")
HYDROGEN_SONGS = Path("/usr/share/hydrogen/data/demo_songs")

# The Hydrogen kits every model is evaluated on and never trained on (split by kit,
# never by clip), and the one used to pick the best epoch. One list for all models,
# so that "unseen kits" means the same kits in every table of the README.
HELD_OUT_KITS = ("GMRockKit", "ForzeeStereo", "TR808EmulationKit", "ElectricEmpireKit", "VariBreaks")
VALIDATION_KITS = ("Audiophob",)
