-- release: KEYS entry, counter; ARGV token (8 bytes), now ('' = TIME), channel, origin (8 bytes)
-- {0} | {1, why, holder token} (see lost). The counter stays: it outlives the entry.
local now = clock(ARGV[2])
local e = entry(KEYS[1])
local no = lost(e, ARGV[1], now)
if no then
  return no
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], 'r' .. ARGV[4])
return {0}
