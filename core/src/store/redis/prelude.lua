-- seawall RedisStore: helpers shared by every script (docs/redis.md has the layout).
--
-- An entry (KEYS[1]) is a Redis string of one of two kinds, both with the same fixed
-- 64-byte header so a script reads them alike (offsets below are Lua's, 1-based):
--   lease  "SWL" 01 00 000000 | token u64 @9 | claimed_ms u64 @17 | expires_ms u64 @25 | fingerprint @33..64
--   record "SWR" 01 flags 000000 | token @9 | created_ms @17 | expires_ms @25 | fingerprint @33..64 | body...
-- (the record is exactly seawall's versioned record format, Record::encode / decode).
-- KEYS[2] is the key's fencing-token counter (a decimal integer). Every expiry decision
-- reads the server's clock (TIME), unless a test clock passed "now" in milliseconds.
-- Numbers stay below 2^53, so Lua's doubles hold them exactly.
if redis.replicate_commands then
  redis.replicate_commands() -- Redis < 5: replicate effects, as TIME is not deterministic
end

local function u64(s, at)
  local n = 0
  for i = at, at + 7 do
    n = n * 256 + string.byte(s, i)
  end
  return n
end

local function be64(n)
  local b = {}
  for i = 8, 1, -1 do
    b[i] = n % 256
    n = math.floor(n / 256)
  end
  return string.char(b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8])
end

-- a whole number as decimal text (tostring would write 1.8e+15)
local function int(n)
  return string.format('%.0f', n)
end

local function clock(arg)
  if arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The entry at `key`: nil, or the string (checked to be a seawall entry).
local function entry(key)
  local e = redis.call('GET', key)
  if not e then
    return nil
  end
  local magic = string.sub(e, 1, 3)
  if #e < 64 or (magic ~= 'SWL' and magic ~= 'SWR') or string.byte(e, 4) ~= 1 then
    error('seawall: ' .. key .. ' does not hold a seawall entry of format version 1')
  end
  return e
end

-- Keeps the token counter alive at least `px` ms more (never shortens it); recreates it
-- at `token` if someone deleted it.
local function keep_counter(ckey, token, px)
  local left = redis.call('PTTL', ckey)
  if left == -2 then
    redis.call('SET', ckey, int(token), 'PX', int(px))
  elseif left >= 0 and left < px then
    redis.call('PEXPIRE', ckey, int(px))
  end
end

-- nil when `tok` (8 bytes) holds a live lease in entry `e` at `now`; otherwise the reply
-- that says why not: {1, why, holder token}, why = 0 nothing there, 1 this lease expired,
-- 2 another owner's live lease, 3 another owner's lease, expired too, 4 completed by this
-- lease, 5 completed by another owner.
local function lost(e, tok, now)
  if not e then
    return {1, 0, 0}
  end
  local same = string.sub(e, 9, 16) == tok
  local holder = u64(e, 9)
  if string.sub(e, 1, 3) == 'SWL' then
    if same then
      if now < u64(e, 25) then
        return nil
      end
      return {1, 1, holder}
    end
    if now < u64(e, 25) then
      return {1, 2, holder}
    end
    return {1, 3, holder}
  end
  if same then
    return {1, 4, holder}
  end
  return {1, 5, holder}
end
