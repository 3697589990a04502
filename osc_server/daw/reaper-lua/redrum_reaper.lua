-- Shared by the Redrum Lua ReaScripts: read the selected items' files, ask the redrum-kit server
-- over OSC (UDP, LuaSocket), wait for the reply in a deferred loop, insert the result.
-- Needs LuaSocket (ReaPack: "mavriq-lua-sockets", or your system's lua-socket) and `redrum serve`.
-- Server: REDRUM_OSC_HOST / REDRUM_OSC_PORT environment variables (default 127.0.0.1:9000).

local M = {}

local function load_socket()
  local ok, socket = pcall(require, "socket")
  if ok then return socket end
  ok, socket = pcall(require, "mavriq-lua-sockets.socket")   -- the ReaPack package's layout
  if ok then return socket end
  return nil
end

local socket = load_socket()
M.host = os.getenv("REDRUM_OSC_HOST") or "127.0.0.1"
M.port = tonumber(os.getenv("REDRUM_OSC_PORT") or "9000")
M.timeout = tonumber(os.getenv("REDRUM_TIMEOUT") or "600")
local pending = nil

function M.message(text)
  reaper.ShowConsoleMsg("redrum: " .. text .. "\n")
end

-- OSC: strings, int32, float32 ------------------------------------------------------------

local function pad4(s)
  s = s .. "\0"
  return s .. string.rep("\0", (4 - #s % 4) % 4)
end

function M.encode(address, args)
  local tags, body = ",", {}
  for _, a in ipairs(args) do
    if type(a) == "string" then
      tags = tags .. "s"; body[#body + 1] = pad4(a)
    elseif math.type(a) == "integer" then
      tags = tags .. "i"; body[#body + 1] = string.pack(">i4", a)
    else
      tags = tags .. "f"; body[#body + 1] = string.pack(">f", a)
    end
  end
  return pad4(address) .. pad4(tags) .. table.concat(body)
end

local function read_string(data, pos)
  local stop = data:find("\0", pos, true)
  local s = data:sub(pos, stop - 1)
  return s, stop + 1 + (4 - (stop - pos + 1) % 4) % 4
end

function M.decode(data)
  local address, pos = read_string(data, 1)
  local tags
  tags, pos = read_string(data, pos)
  local args = {}
  for t in tags:sub(2):gmatch(".") do
    if t == "s" then
      local s; s, pos = read_string(data, pos); args[#args + 1] = s
    elseif t == "i" then
      args[#args + 1] = string.unpack(">i4", data, pos); pos = pos + 4
    elseif t == "f" then
      args[#args + 1] = string.unpack(">f", data, pos); pos = pos + 4
    elseif t == "d" then
      args[#args + 1] = string.unpack(">d", data, pos); pos = pos + 8
    end
  end
  return address, args
end

-- JSON (the replies' objects, arrays, strings, numbers, booleans, null) ----------------------

local function json_value(s, pos)
  pos = s:find("%S", pos)
  local c = s:sub(pos, pos)
  if c == "{" then
    local out = {}
    pos = s:find("%S", pos + 1)
    if s:sub(pos, pos) == "}" then return out, pos + 1 end
    while true do
      local key; key, pos = json_value(s, pos)
      pos = s:find(":", pos, true) + 1
      out[key], pos = json_value(s, pos)
      pos = s:find("%S", pos)
      if s:sub(pos, pos) == "}" then return out, pos + 1 end
      pos = pos + 1                                   -- the comma
    end
  elseif c == "[" then
    local out = {}
    pos = s:find("%S", pos + 1)
    if s:sub(pos, pos) == "]" then return out, pos + 1 end
    while true do
      out[#out + 1], pos = json_value(s, pos)
      pos = s:find("%S", pos)
      if s:sub(pos, pos) == "]" then return out, pos + 1 end
      pos = pos + 1
    end
  elseif c == '"' then
    local parts, i = {}, pos + 1
    while true do
      local ch = s:sub(i, i)
      if ch == '"' then return table.concat(parts), i + 1 end
      if ch == "\\" then
        local e = s:sub(i + 1, i + 1)
        if e == "u" then
          parts[#parts + 1] = utf8.char(tonumber(s:sub(i + 2, i + 5), 16)); i = i + 6
        else
          parts[#parts + 1] = ({n = "\n", t = "\t", r = "\r", b = "\b", f = "\f"})[e] or e; i = i + 2
        end
      else
        parts[#parts + 1] = ch; i = i + 1
      end
    end
  elseif s:sub(pos, pos + 3) == "true" then return true, pos + 4
  elseif s:sub(pos, pos + 4) == "false" then return false, pos + 5
  elseif s:sub(pos, pos + 3) == "null" then return nil, pos + 4
  end
  local num = s:match("^-?[%d.eE+-]+", pos)
  return tonumber(num), pos + #num
end

function M.json(s)
  return (json_value(s, 1))
end

-- Reaper -------------------------------------------------------------------------------------

function M.selected_items(n)
  local count = reaper.CountSelectedMediaItems(0)
  if count < n then
    M.message(string.format("select %d item%s first (%d selected)", n, n > 1 and "s" or "", count))
    return nil
  end
  local out = {}
  for i = 0, n - 1 do
    local item = reaper.GetSelectedMediaItem(0, i)
    local take = reaper.GetActiveTake(item)
    if not take then
      M.message(string.format("selected item %d has no take (an empty item?)", i + 1)); return nil
    end
    local path = reaper.GetMediaSourceFileName(reaper.GetMediaItemTake_Source(take), "")
    if not path or path == "" then
      M.message(string.format("selected item %d is not an audio file (MIDI or a generated item?)", i + 1))
      return nil
    end
    out[#out + 1] = {item = item, path = path, position = reaper.GetMediaItemInfo_Value(item, "D_POSITION"),
                     trim = {reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS"),    -- the part of the file
                             reaper.GetMediaItemInfo_Value(item, "D_LENGTH")}}           -- the item plays
  end
  return out
end

-- `trim` {offset, length}: show the same part of the result as a trimmed item shows of its file,
-- for a result that keeps that file's timing (a redrummed target, a transcription).
function M.insert_on_new_track(paths, position, name, trim)
  local index = reaper.CountTracks(0)
  reaper.InsertTrackAtIndex(index, true)
  local track = reaper.GetTrack(0, index)
  reaper.GetSetMediaTrackInfo_String(track, "P_NAME", name, true)
  reaper.SetOnlyTrackSelected(track)
  for _, path in ipairs(paths) do
    reaper.SetEditCurPos(position, false, false)
    reaper.InsertMedia(path, 0)
    local item = reaper.GetSelectedMediaItem(0, 0)
    if item and trim then
      reaper.SetMediaItemTakeInfo_Value(reaper.GetActiveTake(item), "D_STARTOFFS", trim[1])
      reaper.SetMediaItemInfo_Value(item, "D_LENGTH", trim[2])
    end
    if item then position = position + reaper.GetMediaItemInfo_Value(item, "D_LENGTH") end
  end
  reaper.UpdateArrange()
end

local function poll()
  if not pending then return end
  while true do
    local data = pending.udp:receive()
    if not data then break end
    local ok, address, args = pcall(M.decode, data)
    if ok and address == "/redrum/reply" and args[1] == pending.id then
      local on_reply = pending.on_reply
      pending.udp:close()
      pending = nil
      if args[2] == "ok" then on_reply(M.json(args[3])) else M.message("error: " .. tostring(args[3])) end
      return
    end
  end
  if reaper.time_precise() - pending.since > M.timeout then
    M.message(string.format("no answer from the redrum-kit server at %s:%d (is `redrum serve` running?)",
                            M.host, M.port))
    pending.udp:close()
    pending = nil
    return
  end
  reaper.defer(poll)
end

function M.send(address, args, on_reply)
  if not socket then
    M.message("LuaSocket is not installed: install \"mavriq-lua-sockets\" with ReaPack, or use the Python scripts")
    return
  end
  if pending then M.message("a request is still running; wait for it to finish"); return end
  local id = string.format("reaper-lua-%d", math.floor(reaper.time_precise() * 1000))
  local udp = socket.udp()
  udp:settimeout(0)
  table.insert(args, 1, id)
  udp:sendto(M.encode(address, args), M.host, M.port)
  pending = {udp = udp, id = id, on_reply = on_reply, since = reaper.time_precise()}
  M.message(string.format("%s sent to %s:%d; waiting for the result...", address, M.host, M.port))
  reaper.defer(poll)
end

-- the actions ---------------------------------------------------------------------------

function M.transform()
  local items = M.selected_items(2)
  if not items then return end
  M.send("/redrum/transform", {items[1].path, items[2].path}, function(result)
    M.insert_on_new_track({result.path}, items[2].position, "Redrum", items[2].trim)
    M.say_guessed(result, "the source")
  end)
end

function M.say_guessed(result, whose)   -- drums `whose` sounds play none of: made up by the model
  if result.guessed and #result.guessed > 0 then
    M.message(whose .. " plays no " .. table.concat(result.guessed, " or ") .. ": those hits are the model's guess")
  end
end

function M.layer()
  local items = M.selected_items(1)
  if not items then return end
  M.send("/redrum/layer", {items[1].path, 0.04}, function(result)
    M.insert_on_new_track({result.path}, items[1].position, "Layered " .. (result.class or ""))
  end)
end

function M.interpolate(steps)
  local items = M.selected_items(2)
  if not items then return end
  M.send("/redrum/interpolate", {items[1].path, items[2].path, steps or 8}, function(result)
    M.insert_on_new_track(result.paths, items[1].position, "Redrum morph")
    M.say_guessed(result, "the first item")
  end)
end

function M.transcribe()
  local items = M.selected_items(1)
  if not items then return end
  local tempo = reaper.TimeMap_GetDividedBpmAtTime(items[1].position)     -- the project's, so notes sit on its grid
  M.send("/redrum/transcribe", {items[1].path, "", tempo + 0.0}, function(result)
    M.insert_on_new_track({result.path}, items[1].position, "Redrum MIDI", items[1].trim)
  end)
end

return M
