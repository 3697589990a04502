"""Configs are dataclasses, read from TOML files in `presets/`.

Unknown keys are an error (a typo must not silently fall back to a default),
and every value in force can be printed with `dataclasses.asdict`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import TypeVar

from redrum_kit.errors import RedrumError

C = TypeVar("C")


def load_config(cls: type[C], path: Path | None, **overrides) -> C:
    """Build dataclass `cls` from TOML file `path` (None: defaults), then `overrides`."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RedrumError(f"{path}: config file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RedrumError(f"{path}: not valid TOML ({exc})") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, data, str(path or "config"))


def from_dict(cls: type[C], data: dict, where: str) -> C:
    """Build dataclass `cls` from `data`; unknown keys are an error naming `where` they came from."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RedrumError(f"{where}: unknown setting(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    for f in dataclasses.fields(cls):
        if f.name in data and f.type in (bool, "bool") and not isinstance(data[f.name], bool):
            raise RedrumError(f"{where}: {f.name} must be true or false (not {data[f.name]!r})")
    return cls(**data)
