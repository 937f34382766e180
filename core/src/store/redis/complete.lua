-- complete: KEYS entry, counter; ARGV token (8 bytes), ttl ms, grace ms, now ('' = TIME),
-- channel, record (encoded; its token / times / fingerprint and its header's CRC-32C are
-- filled in here, its body's CRC-32C is the writer's), origin (8 bytes naming the store
-- instance, so it can skip its own messages)
-- {0, created_ms, expires_ms, fingerprint} | {1, why, holder token} (see lost)
local now = clock(ARGV[4])
local tok, ttl, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local e = entry(KEYS[1])
local no = lost(e, tok, now)
if no then
  return no
end
local body = ARGV[6]
if #body < 80 or string.sub(body, 1, 4) ~= 'SWR\2' then
  error('seawall: complete was sent ' .. #body .. ' bytes that are not a record of format version 2')
end
local fp = string.sub(e, 33, 64)
local header = string.sub(body, 1, 8) .. tok .. be64(now) .. be64(now + ttl) .. fp
local record = header .. string.sub(body, 65, #body - 4) .. be32(crc32c(header))
local px = ttl + grace
redis.call('SET', KEYS[1], record, 'PX', int(px))
keep_counter(KEYS[2], u64(e, 9), px)
-- Waiters in other processes get the record itself when it is small, else a nudge to look.
if #record <= 65536 then
  redis.call('PUBLISH', ARGV[5], 'c' .. ARGV[7] .. record)
else
  redis.call('PUBLISH', ARGV[5], 'c' .. ARGV[7])
end
return {0, now, now + ttl, fp}
