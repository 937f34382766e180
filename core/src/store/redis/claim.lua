-- claim: KEYS entry, counter; ARGV fingerprint (32 bytes), lease ms, grace ms, now ('' = TIME)
-- {0, token, expires_in_ms, took_over} acquired | {1, token, expires_in_ms} in progress
-- {2, record} completed | {3, completed (0/1)} fingerprint mismatch
local now = clock(ARGV[4])
local fp, lease, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local e = entry(KEYS[1])
local took_over = 0
if e then
  local expires = u64(e, 25)
  local lease_entry = string.sub(e, 1, 3) == 'SWL'
  if now < expires then
    local same = string.sub(e, 33, 64) == fp
    if lease_entry then
      if same then
        return {1, u64(e, 9), expires - now}
      end
      return {3, 0}
    end
    if same then
      return {2, e} -- the client checks both CRCs
    end
    check_record(e)
    return {3, 1}
  end
  if lease_entry then
    took_over = 1
  else
    check_record(e)
  end
end
-- Tokens: one more than the key's counter, and never below now * 1024, so that a token is
-- not handed out twice for a key even after its counter expired.
local token = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now * 1024)
if token >= 9007199254740992 then
  error('seawall: fencing token out of range for key ' .. KEYS[1])
end
local px = lease + grace
redis.call('SET', KEYS[2], int(token), 'PX', int(math.max(px, redis.call('PTTL', KEYS[2]))))
redis.call('SET', KEYS[1], lease_bytes('SWL\2\0\0\0\0' .. be64(token) .. be64(now) .. be64(now + lease) .. fp), 'PX', int(px))
return {0, token, lease, took_over}
