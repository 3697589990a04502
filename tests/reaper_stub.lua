-- A stand-in for Reaper's Lua API for the tests: runs a Redrum Lua ReaScript with the given selected
-- items, then its deferred functions until none is left; prints what it inserted as JSON.
--   lua5.4 reaper_stub.lua SCRIPT [PATH@POSITION ...]
local script = arg[1]
local selected, tracks, inserted, deferred, console = {}, {}, {}, {}, {}
local cursor, current = 0.0, nil
for i = 2, #arg do
  local path, pos = arg[i]:match("^(.*)@([%d.]+)$")
  selected[#selected + 1] = {path = path, position = tonumber(pos), length = 2.0,
                            offset = tonumber(os.getenv("REDRUM_TEST_OFFSET") or "0")}
end

local function file_exists(p) local f = io.open(p, "rb"); if f then f:close() end; return f ~= nil end

reaper = {
  get_action_context = function() return false, script, 0, 0, 0, 0, 0 end,
  ShowConsoleMsg = function(t) console[#console + 1] = t end,
  CountSelectedMediaItems = function() return #selected end,
  GetSelectedMediaItem = function(_, i) return selected[i + 1] end,
  GetActiveTake = function(item) if item.path ~= "NOTAKE" then return item end end,
  GetMediaItemTake_Source = function(take) return take end,
  GetMediaSourceFileName = function(src, buf) return src.path end,
  GetMediaItemInfo_Value = function(item, key) return key == "D_POSITION" and item.position or item.length end,
  SetMediaItemInfo_Value = function(item, key, value) if key == "D_LENGTH" then item.length = value end; return true end,
  GetMediaItemTakeInfo_Value = function(take, key) return take.offset or 0 end,
  SetMediaItemTakeInfo_Value = function(take, key, value) take.offset = value; return true end,
  CountTracks = function() return #tracks end,
  InsertTrackAtIndex = function(i) table.insert(tracks, i + 1, {items = {}}) end,
  GetTrack = function(_, i) return tracks[i + 1] end,
  GetSetMediaTrackInfo_String = function(track, key, value, set) if set then track[key] = value end; return true, value end,
  SetOnlyTrackSelected = function(track) current = track end,
  SetEditCurPos = function(pos) cursor = pos end,
  InsertMedia = function(path, mode)
    if not file_exists(path) then error("InsertMedia: no such file " .. path) end
    local item = {path = path, position = cursor, length = 2.0}
    current.items[#current.items + 1] = item
    inserted[#inserted + 1] = item
    selected = {item}
    return 1
  end,
  UpdateArrange = function() end,
  TimeMap_GetDividedBpmAtTime = function() return tonumber(os.getenv("REDRUM_TEST_BPM") or "120") end,
  time_precise = function() return os.clock() + os.time() end,
  defer = function(fn) deferred[#deferred + 1] = fn end,
}

dofile(script)
local deadline = os.time() + 120
while #deferred > 0 and os.time() < deadline do
  local fn = table.remove(deferred, 1)
  fn()
  local t0 = os.clock(); while os.clock() - t0 < 0.005 do end
end

local function q(s) return '"' .. tostring(s):gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"' end
local parts = {}
for _, it in ipairs(inserted) do
  parts[#parts + 1] = string.format('{"path": %s, "position": %s, "offset": %s, "length": %s}', q(it.path), it.position,
                                    it.offset or 0, it.length)
end
local lines = {}
for _, l in ipairs(console) do lines[#lines + 1] = q(l) end
local names = {}
for _, t in ipairs(tracks) do names[#names + 1] = q(t.P_NAME or "") end
print(string.format('{"inserted": [%s], "console": [%s], "tracks": [%s]}', table.concat(parts, ", "),
                    table.concat(lines, ", "), table.concat(names, ", ")))
