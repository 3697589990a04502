"""One representation of a drum part: timed events with class and velocity, plus tempo.

Times are in seconds from the start of the pattern; velocities are MIDI
1..127. Classes are the library's oneshot classes (`drums.ONESHOT_CLASSES`);
`TRANSCRIPTION_CLASS` folds them into the five classes a transcriber hears
(kick, snare, hat, tom, cymbal). The MIDI note an event came from is kept
(`note`), so a kit can tell a ride from a crash or a low tom from a high one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from redrum_kit.drums import GM_NOTE, ONESHOT_CLASSES
from redrum_kit.errors import RedrumError

TRANSCRIPTION_CLASSES = ("kick", "snare", "hat", "tom", "cymbal")
TRANSCRIPTION_CLASS = {"kick": "kick", "snare": "snare", "clap": "snare", "hat_closed": "hat",
                       "hat_open": "hat", "tom": "tom", "cymbal": "cymbal", "perc": None}
# transcription class -> the library class its events are written as (GM notes follow)
EVENT_CLASS = {"kick": "kick", "snare": "snare", "hat": "hat_closed", "tom": "tom", "cymbal": "cymbal"}

# General MIDI percussion key map (notes 35-81) -> class
GM_CLASS: dict[int, str] = {35: "kick", 36: "kick", 37: "perc", 38: "snare", 39: "clap", 40: "snare",
                            42: "hat_closed", 44: "hat_closed", 46: "hat_open", 49: "cymbal", 51: "cymbal",
                            52: "cymbal", 53: "cymbal", 55: "cymbal", 57: "cymbal", 59: "cymbal"}
GM_CLASS.update({n: "tom" for n in (41, 43, 45, 47, 48, 50)})
GM_CLASS.update({n: "perc" for n in range(54, 82) if n not in GM_CLASS})


class RhythmError(RedrumError):
    """A rhythm file that cannot be read or a pattern that cannot be used."""


@dataclass(frozen=True, order=True)
class Event:
    time: float          # seconds
    cls: str
    velocity: int = 100  # 1..127
    note: int | None = None

    def midi_note(self) -> int:
        return self.note if self.note is not None else GM_NOTE[self.cls]


@dataclass
class Pattern:
    events: list[Event]
    tempo: float = 120.0          # beats per minute
    length: float = 0.0           # seconds; 0: up to the last event
    beats_per_bar: int = 4
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        for e in self.events:
            if e.cls not in ONESHOT_CLASSES:
                raise RhythmError(f"unknown drum class {e.cls!r}")
        self.events = sorted(self.events)
        if not self.length:
            self.length = (self.events[-1].time + 0.5) if self.events else 0.0

    @property
    def bar_seconds(self) -> float:
        return self.beats_per_bar * 60.0 / self.tempo

    def of_class(self, cls: str) -> list[Event]:
        return [e for e in self.events if e.cls == cls]

    def window(self, start: float, length: float) -> "Pattern":
        """Events in [start, start + length), shifted to start at 0."""
        events = [replace(e, time=e.time - start) for e in self.events if start <= e.time < start + length]
        return Pattern(events, self.tempo, length, self.beats_per_bar, self.name, dict(self.meta))

    def stretched(self, factor: float) -> "Pattern":
        """Tempo scaled by `factor` (> 1 is faster): times divided by it."""
        events = [replace(e, time=e.time / factor) for e in self.events]
        return Pattern(events, self.tempo * factor, self.length / factor, self.beats_per_bar, self.name,
                       dict(self.meta))

    def looped(self, seconds: float) -> "Pattern":
        """Repeat the pattern (every `length` seconds) to fill `seconds`."""
        if self.length <= 0:
            raise RhythmError("cannot loop an empty pattern")
        events, offset = [], 0.0
        while offset < seconds:
            events += [replace(e, time=e.time + offset) for e in self.events if e.time + offset < seconds]
            offset += self.length
        return Pattern(events, self.tempo, seconds, self.beats_per_bar, self.name, dict(self.meta))

    def to_json(self) -> dict:
        return {"name": self.name, "tempo": self.tempo, "length": self.length,
                "beats_per_bar": self.beats_per_bar, "meta": self.meta,
                "events": [{"time": round(e.time, 6), "class": e.cls, "velocity": e.velocity,
                            **({"note": e.note} if e.note is not None else {})} for e in self.events]}

    @classmethod
    def from_json(cls, data: dict) -> "Pattern":
        try:
            events = [Event(float(e["time"]), e["class"], int(e.get("velocity", 100)), e.get("note"))
                      for e in data["events"]]
            return cls(events, float(data.get("tempo", 120.0)), float(data.get("length", 0.0)),
                       int(data.get("beats_per_bar", 4)), str(data.get("name", "")), dict(data.get("meta", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise RhythmError(f"not a pattern: {exc}") from None


def save_json(pattern: Pattern, path: Path) -> None:
    Path(path).write_text(json.dumps(pattern.to_json(), indent=1))


def load(path: Path, channel: int | None = None) -> Pattern:
    """Read a pattern from .mid/.midi, .json or .h2song (its whole song)."""
    path = Path(path)
    if not path.is_file():
        raise RhythmError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".mid", ".midi"):
        from redrum_kit.rhythm.midi import read_midi
        return read_midi(path, channel=channel)
    if suffix == ".json":
        try:
            return Pattern.from_json(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RhythmError(f"{path.name}: not valid JSON ({exc})") from None
    if suffix == ".h2song":
        from redrum_kit.rhythm.h2song import read_song
        return read_song(path)
    raise RhythmError(f"{path.name}: unknown rhythm format (use .mid, .json or .h2song)")


__all__ = ["Event", "Pattern", "RhythmError", "TRANSCRIPTION_CLASSES", "TRANSCRIPTION_CLASS", "GM_CLASS",
           "load", "save_json"]
