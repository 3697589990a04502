-- Redrum - transcribe selected item to MIDI (ReaScript, Lua). Install: see osc_server/daw/README.md.
local here = ({reaper.get_action_context()})[2]:match("^(.*[/\\])") or "./"
local redrum = dofile(here .. "redrum_reaper.lua")
redrum.transcribe()
