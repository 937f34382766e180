-- peek: KEYS entry; ARGV now ('' = TIME). Changes nothing.
-- {0} absent | {1, token, expires_in_ms, fingerprint} in progress | {2, record} completed
local now = clock(ARGV[1])
local e = entry(KEYS[1])
if not e then
  return {0}
end
if now >= u64(e, 25) then
  if string.sub(e, 1, 3) == 'SWR' then
    check_record(e)
  end
  return {0}
end
if string.sub(e, 1, 3) == 'SWL' then
  return {1, u64(e, 9), u64(e, 25) - now, string.sub(e, 33, 64)}
end
return {2, e}
