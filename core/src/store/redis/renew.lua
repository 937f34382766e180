-- renew: KEYS entry, counter; ARGV token (8 bytes), lease ms, grace ms, now ('' = TIME)
-- {0, expires_in_ms} | {1, why, holder token} (see lost)
local now = clock(ARGV[4])
local lease, grace = tonumber(ARGV[2]), tonumber(ARGV[3])
local e = entry(KEYS[1])
local no = lost(e, ARGV[1], now)
if no then
  return no
end
local px = lease + grace
redis.call('SET', KEYS[1], lease_bytes(string.sub(e, 1, 24) .. be64(now + lease) .. string.sub(e, 33, 64)), 'PX', int(px))
keep_counter(KEYS[2], u64(e, 9), px)
return {0, lease}
