"""Hydrogen songs (`.h2song`): their patterns, and the song as one part.

A pattern's notes sit at tick positions, 48 ticks a quarter note; velocities
are 0..1; `leadlag` (-1..1) nudges a note by up to 5 ticks (Hydrogen's
humanise). Instruments are named in the song's own instrument list, so the
class of each note comes from its instrument's name.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from redrum_kit.drums import class_from_name
from redrum_kit.rhythm.events import Event, Pattern, RhythmError

TICKS_PER_BEAT = 48
LEADLAG_TICKS = 5


def _parse(path: Path) -> tuple[ET.Element, str, float, dict[str, str | None]]:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise RhythmError(f"{Path(path).name}: not a readable Hydrogen song ({exc})") from None
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    try:
        bpm = float(root.findtext(ns + "bpm", "120"))
    except ValueError:
        bpm = 120.0
    classes = {}
    for inst in root.iter(ns + "instrument"):
        classes[inst.findtext(ns + "id", "").strip()] = class_from_name(inst.findtext(ns + "name", ""))
    return root, ns, bpm, classes


def _pattern_events(node: ET.Element, ns: str, bpm: float, classes: dict, offset_ticks: int = 0) -> list[Event]:
    seconds_per_tick = 60.0 / bpm / TICKS_PER_BEAT
    events = []
    for note in node.iter(ns + "note"):
        cls = classes.get(note.findtext(ns + "instrument", "").strip())
        if cls is None or note.findtext(ns + "note_off", "false").strip() == "true":
            continue
        try:
            ticks = int(note.findtext(ns + "position", "0")) + offset_ticks
            ticks += float(note.findtext(ns + "leadlag", "0")) * LEADLAG_TICKS
            velocity = float(note.findtext(ns + "velocity", "0.8"))
        except ValueError:
            continue
        if velocity > 0:
            events.append(Event(max(0.0, ticks * seconds_per_tick), cls, max(1, min(127, round(velocity * 127)))))
    return events


def read_patterns(path: Path) -> list[Pattern]:
    """Each pattern of the song, one Pattern each (the length is the pattern's size)."""
    root, ns, bpm, classes = _parse(path)
    out = []
    for node in root.iter(ns + "pattern"):
        if node.find(ns + "noteList") is None:
            continue
        size = int(node.findtext(ns + "size", str(4 * TICKS_PER_BEAT)) or 4 * TICKS_PER_BEAT)
        events = _pattern_events(node, ns, bpm, classes)
        if events:
            out.append(Pattern(events, bpm, size * 60.0 / bpm / TICKS_PER_BEAT,
                               name=f"{Path(path).stem}/{node.findtext(ns + 'name', '')}"))
    return out


def read_song(path: Path) -> Pattern:
    """The whole song: its pattern sequence, groups played together, one after another."""
    root, ns, bpm, classes = _parse(path)
    by_name = {}
    for node in root.iter(ns + "pattern"):
        if node.find(ns + "noteList") is not None:
            by_name[node.findtext(ns + "name", "")] = node
    events, ticks = [], 0
    sequence = root.find(ns + "patternSequence")
    for group in (sequence.iter(ns + "group") if sequence is not None else []):
        nodes = [by_name[n.text] for n in group.iter(ns + "patternID") if n.text in by_name]
        if not nodes:
            continue
        for node in nodes:
            events += _pattern_events(node, ns, bpm, classes, offset_ticks=ticks)
        ticks += max(int(n.findtext(ns + "size", "192") or 192) for n in nodes)
    if not events:
        raise RhythmError(f"{Path(path).name}: the song has no drum notes")
    return Pattern(events, bpm, ticks * 60.0 / bpm / TICKS_PER_BEAT, name=Path(path).stem)
