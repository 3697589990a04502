"""`redrum midi`: play a kit's pads from a MIDI input through an audio output.

mido (python-rtmidi backend) for MIDI, sounddevice for audio; both only at
this edge. No MIDI system or no audio device is a one-line error, never a
traceback; the player itself (`pads.Player`) needs neither, so tests and
`redrum bench midi` drive it with messages and a null sink.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

import numpy as np

from redrum_kit import audio
from redrum_kit.errors import RedrumError
from redrum_kit.pads import Player

BLOCK = 128          # audio frames per callback (2.9 ms at 44.1 kHz)
VIRTUAL_PORT = "redrum"


@contextlib.contextmanager
def quiet_stderr():
    """Silence what C libraries (ALSA, PortAudio) print on file descriptor 2 meanwhile: their
    failures reach the user as our one-line error instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_midi_input(port: str | None):
    """The named MIDI input, or a new virtual input `redrum` other programs can connect to."""
    import mido
    try:
        with quiet_stderr():
            return _open_midi(mido, port)
    except RedrumError:
        raise
    except Exception as exc:   # rtmidi raises SystemError and others when there is no MIDI system
        raise RedrumError(f"cannot open a MIDI input ({str(exc).strip() or type(exc).__name__}); "
                          "is there a MIDI system (ALSA, CoreMIDI) on this machine?") from None


def _open_midi(mido, port: str | None):
    mido.set_backend("mido.backends.rtmidi")
    if port is None:
        return mido.open_input(VIRTUAL_PORT, virtual=True)
    names = mido.get_input_names()
    if port not in names:
        raise RedrumError(f"no MIDI input named {port!r} (inputs: {', '.join(names) or 'none'})")
    return mido.open_input(port)


def open_audio_output(player: Player, device: str | None):
    """A running sounddevice stream whose callback mixes the player's next block."""
    try:
        with quiet_stderr():
            import sounddevice as sd
    except Exception as exc:   # OSError when PortAudio is missing
        raise RedrumError(f"no audio output: {exc} (install PortAudio, e.g. apt-get install libportaudio2)") from None

    def callback(outdata, frames, t, status):
        outdata[:] = audio.fit_channels(player.render(frames), 2)

    try:
        with quiet_stderr():
            stream = sd.OutputStream(samplerate=player.sr, blocksize=BLOCK, channels=player.channels,
                                     dtype="float32",
                                     device=device, callback=callback, latency="low")
            stream.start()
    except Exception as exc:
        raise RedrumError(f"cannot open the audio output {device or '(default)'}: {exc}") from None
    return stream


class NullSink:
    """Pulls blocks from the player at the pace of real time, and throws them away."""

    def __init__(self, player: Player, block: int = BLOCK):
        self.player, self.block = player, block
        self._stop = threading.Event()
        self.blocks = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        period = self.block / self.player.sr
        while not self._stop.wait(period):
            self.player.render(self.block)
            self.blocks += 1

    def start(self) -> "NullSink":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def play(player: Player, port: str | None, audio_device: str | None, stop: threading.Event,
         on_ready=None) -> None:
    """Until `stop` is set: MIDI messages to the player, the player to the audio output."""
    midi = open_midi_input(port)
    try:
        stream = open_audio_output(player, audio_device)
    except RedrumError:
        midi.close()
        raise
    if on_ready is not None:
        on_ready()
    try:
        while not stop.is_set():
            for msg in midi.iter_pending():
                player.handle(msg)
            time.sleep(0.0005)
    finally:
        stream.stop()
        stream.close()
        midi.close()


def note_latencies(player: Player, notes: list[int], n: int = 2000, seed: int = 0) -> np.ndarray:
    """Milliseconds from a note-on message to its voice's buffer in the mixer, through `handle`."""
    import mido
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    for k in range(n):
        msg = mido.Message("note_on", note=int(rng.choice(notes)), velocity=int(rng.integers(1, 128)))
        start = time.perf_counter()
        player.handle(msg)
        out[k] = 1000 * (time.perf_counter() - start)
        if k % 8 == 7:
            player.render(BLOCK)
    return out
