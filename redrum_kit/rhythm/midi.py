"""MIDI drum parts in and out (General MIDI drum map, via mido).

DAWs often export a drum track on channel 1 rather than GM's channel 10, so
by default drum notes on any channel are read; `channel` (1-16) restricts.
"""

from __future__ import annotations

import io
from pathlib import Path

import mido

from redrum_kit import files
from redrum_kit.rhythm.events import GM_CLASS, Event, Pattern, RhythmError

PPQ = 480


def read_midi(path: Path, channel: int | None = None) -> Pattern:
    """Every note_on (velocity > 0) whose key is in the GM drum map, timed with the tempo map."""
    if channel is not None and not 1 <= channel <= 16:
        raise RhythmError(f"MIDI channel must be 1-16, got {channel}")
    try:
        mid = mido.MidiFile(str(path))
        messages = list(mid)  # times in seconds, tempo changes applied
    except Exception as exc:  # mido raises OSError, EOFError, ValueError, KeyError... on bad files
        why = f" ({exc})" if str(exc) else ""
        raise RhythmError(f"{Path(path).name}: not a readable MIDI file{why}") from None
    tempo = None
    beats_per_bar = 4
    now = 0.0
    events = []
    for msg in messages:
        now += msg.time
        if msg.type == "set_tempo" and tempo is None:
            tempo = mido.tempo2bpm(msg.tempo)
        elif msg.type == "time_signature" and now == 0.0:
            beats_per_bar = msg.numerator
        elif msg.type == "note_on" and msg.velocity > 0:
            if channel is not None and msg.channel != channel - 1:
                continue
            cls = GM_CLASS.get(msg.note)
            if cls:
                events.append(Event(now, cls, msg.velocity, msg.note))
    if not events:
        raise RhythmError(f"{Path(path).name}: no drum notes (GM keys 35-81)"
                          + (f" on channel {channel}" if channel else ""))
    tempo = tempo or 120.0
    bar = beats_per_bar * 60.0 / tempo
    length = max(now, bar * -(-events[-1].time // bar)) if events[-1].time > 0 else bar
    return Pattern(events, tempo, length, beats_per_bar, Path(path).stem)


def write_midi(pattern: Pattern, path: Path, channel: int = 10, note_seconds: float = 0.05) -> None:
    """A type-0 file on `channel` (GM drums: 10) with the pattern's tempo."""
    mid = mido.MidiFile(type=0, ticks_per_beat=PPQ)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(pattern.tempo), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=pattern.beats_per_bar, denominator=4, time=0))
    ticks_per_second = PPQ * pattern.tempo / 60.0
    timeline = []
    for e in pattern.events:
        on = round(e.time * ticks_per_second)
        timeline.append((on, 1, e.midi_note(), e.velocity))
        timeline.append((on + max(1, round(note_seconds * ticks_per_second)), 0, e.midi_note(), 0))
    timeline.sort(key=lambda x: (x[0], x[1]))
    last = 0
    for tick, is_on, note, vel in timeline:
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, channel=channel - 1, note=note, velocity=vel, time=tick - last))
        last = tick
    end = round(pattern.length * ticks_per_second)
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - last)))
    buffer = io.BytesIO()
    mid.save(file=buffer)
    files.write_bytes(Path(path), buffer.getvalue())   # atomic; never over an existing file
