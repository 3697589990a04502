"""A stand-in for Reaper's Python API (`reaper_python`): the calls the Redrum ReaScripts make,
recorded. Items are dicts {"path", "position", "length"}; `selected` lists them."""

import soundfile as sf

STATE = {"selected": [], "tracks": [], "inserted": [], "deferred": [], "console": [], "cursor": 0.0, "bpm": 120.0}


def reset(selected, bpm=120.0):
    STATE.update(selected=list(selected), tracks=[], inserted=[], deferred=[], console=[], cursor=0.0, bpm=bpm)


def RPR_TimeMap_GetDividedBpmAtTime(time):
    return STATE["bpm"]


def RPR_ShowConsoleMsg(text):
    STATE["console"].append(text)


def RPR_CountSelectedMediaItems(project):
    return len(STATE["selected"])


def RPR_GetSelectedMediaItem(project, i):
    return STATE["selected"][i] if i < len(STATE["selected"]) else None


def RPR_GetActiveTake(item):
    return item if item.get("path") is not None else None


def RPR_GetMediaItemTake_Source(take):
    return take


def RPR_GetMediaSourceFileName(source, buf, size):
    return (source, source["path"], size)


def RPR_GetMediaItemInfo_Value(item, key):
    return {"D_POSITION": item["position"], "D_LENGTH": item["length"]}[key]


def RPR_SetMediaItemInfo_Value(item, key, value):
    item[{"D_POSITION": "position", "D_LENGTH": "length"}[key]] = value
    return True


def RPR_GetMediaItemTakeInfo_Value(take, key):
    return {"D_STARTOFFS": take.get("offset", 0.0)}[key]


def RPR_SetMediaItemTakeInfo_Value(take, key, value):
    take[{"D_STARTOFFS": "offset"}[key]] = value
    return True


def RPR_CountTracks(project):
    return len(STATE["tracks"])


def RPR_InsertTrackAtIndex(index, defaults):
    STATE["tracks"].insert(index, {"name": "", "items": []})


def RPR_GetTrack(project, index):
    return STATE["tracks"][index]


def RPR_GetSetMediaTrackInfo_String(track, key, value, set_new):
    if set_new:
        track[key] = value
    return (True, track, key, track.get(key, ""), set_new)


def RPR_SetOnlyTrackSelected(track):
    STATE["track"] = track


def RPR_SetEditCurPos(position, move_view, seek_play):
    STATE["cursor"] = position


def RPR_InsertMedia(path, mode):
    """Like Reaper: the file must be readable audio or MIDI; it lands on the selected track at the cursor."""
    if path.lower().endswith((".mid", ".midi")):
        import mido
        length = mido.MidiFile(path).length
    else:
        length = sf.info(path).duration
    item = {"path": path, "position": STATE["cursor"], "length": length}
    STATE["track"]["items"].append(item)
    STATE["inserted"].append(item)
    STATE["selected"] = [item]
    return 1


def RPR_UpdateArrange():
    pass


def RPR_defer(code):
    STATE["deferred"].append(code)
