-- Release holds of one user without charging (refused or abandoned admission, sweeper).
-- KEYS[1] the sweeper's index of holds by expiry
-- ARGV[1] the user's key prefix, ARGV[2] expired-before ms (0 = whatever its expiry), then
-- pairs of request id and index member.
-- Returns the number of holds released.
local p = ARGV[1]
local function fmt(x) if x == 0 then return '0' end return string.format('%.0f', x) end
local before = tonumber(ARGV[2])
local released = 0
for i = 3, #ARGV, 2 do
  local hold = p .. 'h:' .. ARGV[i]
  local h = redis.call('HMGET', hold, 'k', 'g', 'm', 'q', 'a', 'x')
  if h[1] and (before == 0 or tonumber(h[6]) < before) then
    local a = tonumber(h[5]) or 0
    local w = p .. 'bal'
    if h[3] == 's' then w = p .. 'g' .. h[2] end
    local kw = p .. 'k' .. h[1]
    if a > 0 then
      if redis.call('EXISTS', w) == 1 then redis.call('HINCRBY', w, 'held', fmt(-a)) end
      if h[4] == '1' and redis.call('EXISTS', kw) == 1 then redis.call('HINCRBY', kw, 'held', fmt(-a)) end
    end
    redis.call('DEL', hold, 'pg:hr:' .. ARGV[i])
    released = released + 1
  end
  if not h[1] or before == 0 or tonumber(h[6]) < before then
    redis.call('ZREM', KEYS[1], ARGV[i + 1])
  end
end
return released
