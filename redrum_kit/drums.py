"""Drum classes, their General MIDI notes, and labels from instrument names.

`ONESHOT_CLASSES` are the classes the library sorts oneshots into. Names of
instruments (Hydrogen kits, file names) are used only to *label training and
evaluation data*; imported oneshots are classified from their audio.
"""

from __future__ import annotations

import re

ONESHOT_CLASSES = ("kick", "snare", "clap", "hat_closed", "hat_open", "tom", "cymbal", "perc")

# General MIDI drum map: the note each class is keyed to in exported kits.
GM_NOTE = {
    "kick": 36, "snare": 38, "clap": 39, "hat_closed": 42, "hat_open": 46,
    "tom": 45, "cymbal": 49, "perc": 37,
}
# Further GM notes for a second or third pad of the same class.
GM_EXTRA_NOTES = {
    "kick": [35], "snare": [40], "tom": [47, 48, 50, 43, 41], "cymbal": [51, 57, 52, 55, 53],
    "hat_closed": [44], "perc": [56, 54, 75, 76, 77, 69, 70], "clap": [], "hat_open": [],
}
# Hi-hats cut each other off (a closed hat chokes a ringing open hat).
CHOKE_GROUP = {"hat_closed": 1, "hat_open": 1}

# Order matters: the first rule that matches a lower-cased name wins.
_NAME_RULES: list[tuple[str, str | None]] = [
    (r"\b(none|fx|zap|whistle|sample:|waterglass|snaps?)\b", None),
    (r"hat.*(pedal|pd\b)|(pedal|pd).*h(i-?)?h|pedal hat|hat.*choke", "hat_closed"),
    (r"hat.*(open|op\b|opened|semi|swish|free|ring)|open.*(hat|h(i-?)?h)|\bohh\b", "hat_open"),
    (r"hat|h(i-?)?h\b|\bhh\b", "hat_closed"),
    (r"kick|bass ?drum|\bbd\b", "kick"),
    (r"clap", "clap"),
    (r"ride.*bell|bell.*ride|^bell$|paiste bell|ride-cup", "cymbal"),
    (r"side ?stick|\bstick\b|rim ?click|\brim\b|cowbell|\bbell\b|clave|shaker|maraca|tambourine|"
     r"agogo|conga|bongo|woodblock|cajon|djembe|dunun|sangban|kenkeni|click", "perc"),
    (r"snare", "snare"),
    (r"(?<![a-z])tom", "tom"),
    (r"crash|ride|splash|china|cymbal|cup", "cymbal"),
]


def class_from_name(name: str) -> str | None:
    """Best-guess class of an instrument from its name, or None if unsure.

    >>> class_from_name("Hi-Hat Open (Paiste Alpha 14\\")")
    'hat_open'
    >>> class_from_name("Floor Tom")
    'tom'
    """
    text = name.lower().replace("_", " ")
    for pattern, cls in _NAME_RULES:
        if re.search(pattern, text):
            return cls
    return None


def gm_notes_for(classes: list[str]) -> list[int]:
    """Give each pad of a kit a distinct GM note, in pad order.

    The first pad of a class gets the class's main note, later ones the
    class's extra notes, then any free note from 60 upwards.
    """
    used: set[int] = set()
    notes = []
    spare = iter(range(60, 128))
    for cls in classes:
        candidates = [GM_NOTE.get(cls, 60)] + GM_EXTRA_NOTES.get(cls, [])
        note = next((n for n in candidates if n not in used), None)
        while note is None or note in used:
            note = next(spare)
        used.add(note)
        notes.append(note)
    return notes
