"""Shared by the Redrum ReaScripts: read the selected items' files, ask the redrum-kit server
over OSC, wait for the reply in a deferred loop (Reaper stays responsive), insert the result.

Needs python-osc in the Python that Reaper uses (`pip install python-osc`) and `redrum serve`
running (`make serve`). The server address comes from the environment variables
REDRUM_OSC_HOST / REDRUM_OSC_PORT (default 127.0.0.1:9000).
"""

import json
import os
import socket
import time

from reaper_python import *  # noqa: F401,F403 - Reaper's API (RPR_*), given by Reaper

HOST = os.environ.get("REDRUM_OSC_HOST", "127.0.0.1")
PORT = int(os.environ.get("REDRUM_OSC_PORT", "9000"))
TIMEOUT = float(os.environ.get("REDRUM_TIMEOUT", "600"))

_pending = {}   # the one request in flight: socket, id, what to do with the reply


def message(text):
    RPR_ShowConsoleMsg("redrum: " + text + "\n")


def selected_items(n):
    """The first n selected items as (item, source file, position in s), or None with a message."""
    count = RPR_CountSelectedMediaItems(0)
    if count < n:
        message("select %d item%s first (%d selected)" % (n, "s" if n > 1 else "", count))
        return None
    out = []
    for i in range(n):
        item = RPR_GetSelectedMediaItem(0, i)
        take = RPR_GetActiveTake(item)
        if not take:
            message("selected item %d has no take (an empty item?)" % (i + 1))
            return None
        source = RPR_GetMediaItemTake_Source(take)
        path = RPR_GetMediaSourceFileName(source, "", 4096)[1]
        if not path:
            message("selected item %d is not an audio file (MIDI or a generated item?)" % (i + 1))
            return None
        out.append((item, path, RPR_GetMediaItemInfo_Value(item, "D_POSITION")))
    return out


def trim_of(item):
    """(start offset in its file, length) of an item, in seconds: the part of the file it plays."""
    return (RPR_GetMediaItemTakeInfo_Value(RPR_GetActiveTake(item), "D_STARTOFFS"),
            RPR_GetMediaItemInfo_Value(item, "D_LENGTH"))


def insert_on_new_track(paths, position, name, trim=None):
    """Each file on one new track named `name`, one after another from `position`. `trim` (offset,
    length): show the same part of the result as a trimmed item shows of its file, for a result
    that keeps that file's timing (a redrummed target, a transcription)."""
    index = RPR_CountTracks(0)
    RPR_InsertTrackAtIndex(index, True)
    track = RPR_GetTrack(0, index)
    RPR_GetSetMediaTrackInfo_String(track, "P_NAME", name, True)
    RPR_SetOnlyTrackSelected(track)
    for path in paths:
        RPR_SetEditCurPos(position, False, False)
        RPR_InsertMedia(path, 0)      # 0: onto the selected track at the edit cursor
        item = RPR_GetSelectedMediaItem(0, 0)
        if item and trim:
            RPR_SetMediaItemTakeInfo_Value(RPR_GetActiveTake(item), "D_STARTOFFS", trim[0])
            RPR_SetMediaItemInfo_Value(item, "D_LENGTH", trim[1])
        if item:
            position += RPR_GetMediaItemInfo_Value(item, "D_LENGTH")
    RPR_UpdateArrange()


def send(address, args, on_reply):
    """Send `address` with a fresh request id and `args`; `on_reply(result dict)` runs on success."""
    from pythonosc.osc_message_builder import OscMessageBuilder
    if _pending:
        message("a request is still running; wait for it to finish")
        return
    request_id = "reaper-%d" % int(time.time() * 1000)
    builder = OscMessageBuilder(address=address)
    for a in [request_id] + list(args):
        builder.add_arg(a)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.sendto(builder.build().dgram, (HOST, PORT))
    _pending.update(sock=sock, id=request_id, on_reply=on_reply, since=time.time(), address=address)
    message("%s sent to %s:%d; waiting for the result..." % (address, HOST, PORT))
    RPR_defer("redrum_reaper.poll()")


def poll():
    """One look at the socket; deferred again until the reply arrives or the wait times out."""
    from pythonosc.osc_message import OscMessage
    if not _pending:
        return
    sock = _pending["sock"]
    while True:
        try:
            data, _ = sock.recvfrom(65536)
        except (BlockingIOError, socket.error):
            break
        try:
            msg = OscMessage(data)
        except Exception:
            continue
        params = list(msg.params)
        if msg.address != "/redrum/reply" or not params or params[0] != _pending["id"]:
            continue
        on_reply = _pending["on_reply"]
        _pending.clear()
        sock.close()
        if params[1] == "ok":
            on_reply(json.loads(params[2]))
        else:
            message("error: %s" % params[2])
        return
    if time.time() - _pending["since"] > TIMEOUT:
        message("no answer from the redrum-kit server at %s:%d (is `redrum serve` running?)" % (HOST, PORT))
        _pending.clear()
        sock.close()
        return
    RPR_defer("redrum_reaper.poll()")


# -- the actions ------------------------------------------------------------

def transform():
    """The first selected item's drum sounds on the rhythm of the second, on a new track."""
    items = selected_items(2)
    if items:
        (_, source, _), (target_item, target, position) = items
        send("/redrum/transform", [source, target],
             lambda r: redrummed(r, position, trim_of(target_item)))


def redrummed(result, position, trim):
    """The redrum on a new track, and which drums the model made up (the source plays none of them)."""
    insert_on_new_track([result["path"]], position, "Redrum", trim)
    say_guessed(result, "the source")


def say_guessed(result, whose):
    """Name the drums the model made up: `whose` sounds (the source, A) play none of them."""
    if result.get("guessed"):
        message("%s plays no %s: those hits are the model's guess" % (whose, " or ".join(result["guessed"])))


def layer():
    """A layered version of the selected oneshot, on a new track under it."""
    items = selected_items(1)
    if items:
        _, target, position = items[0]
        send("/redrum/layer", [target, 0.04],
             lambda r: insert_on_new_track([r["path"]], position, "Layered %s" % r.get("class", "")))


def interpolate(steps=8):
    """`steps` files from the first selected item's rhythm to the second's, one after another."""
    items = selected_items(2)
    if items:
        (_, a, position), (_, b, _) = items
        send("/redrum/interpolate", [a, b, steps],
             lambda r: (insert_on_new_track(r["paths"], position, "Redrum morph"), say_guessed(r, "the first item")))


def transcribe():
    """The selected item's drums as a MIDI item on a new track under it, written at the project's tempo
    there so that its notes sit on the grid."""
    items = selected_items(1)
    if items:
        item, path, position = items[0]
        send("/redrum/transcribe", [path, "", float(RPR_TimeMap_GetDividedBpmAtTime(position))],
             lambda r: insert_on_new_track([r["path"]], position, "Redrum MIDI", trim_of(item)))
