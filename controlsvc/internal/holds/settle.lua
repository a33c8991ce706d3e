-- Apply settled charges of one user to its wallets and release their holds, after the
-- charges committed in PostgreSQL (docs/billing.md, "Reserve, then settle").
-- KEYS[1] the sweeper's index of holds by expiry
-- ARGV[1] the user's key prefix, then per record: request id, cost (-1 = settled before:
-- release only), key id, group id, index member.
-- A wallet is charged only while loaded ('ok'); the user's load token is deleted, so
-- a load whose PostgreSQL read came before this charge is not written. A record without a
-- hold (lost with Redis, swept) marks its wallets for reload instead.
-- Returns the number of holds released.
local p = ARGV[1]
local released = 0
-- '%.0f' of -0 is "-0", which HINCRBY refuses
local function fmt(x) if x == 0 then return '0' end return string.format('%.0f', x) end
local function loaded(w) return redis.call('HEXISTS', w, 'ok') == 1 end
for i = 2, #ARGV, 5 do
  local id, cost, key, group = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local hold = p .. 'h:' .. id
  local bw, kw, gw = p .. 'bal', p .. 'k' .. key, p .. 'g' .. group
  local h = redis.call('HMGET', hold, 'k', 'g', 'm', 'q', 'a', 's')
  if h[1] and h[1] == key and h[2] == group and cost >= 0 then
    local a = tonumber(h[5]) or 0
    if h[3] == 's' then
      if loaded(gw) then
        if redis.call('HGET', gw, 'sid') == h[6] then
          redis.call('HINCRBY', gw, 'u1', fmt(cost))
          redis.call('HINCRBY', gw, 'u2', fmt(cost))
          redis.call('HINCRBY', gw, 'u3', fmt(cost))
        else
          redis.call('HDEL', gw, 'ok')
        end
      end
      if a > 0 and redis.call('EXISTS', gw) == 1 then redis.call('HINCRBY', gw, 'held', fmt(-a)) end
    else
      if loaded(bw) then redis.call('HINCRBY', bw, 'bal', fmt(-cost)) end
      if a > 0 and redis.call('EXISTS', bw) == 1 then redis.call('HINCRBY', bw, 'held', fmt(-a)) end
    end
    if loaded(kw) and tonumber(redis.call('HGET', kw, 'q')) >= 0 then
      redis.call('HINCRBY', kw, 'used', fmt(cost))
    end
    if h[4] == '1' and a > 0 and redis.call('EXISTS', kw) == 1 then redis.call('HINCRBY', kw, 'held', fmt(-a)) end
    redis.call('DEL', hold, 'pg:hr:' .. id)
    redis.call('ZREM', KEYS[1], ARGV[i + 4])
    released = released + 1
  else
    if h[1] and h[1] == key and h[2] == group then
      -- settled before (a replay): release without charging again
      local a = tonumber(h[5]) or 0
      local w = bw
      if h[3] == 's' then w = gw end
      if a > 0 and redis.call('EXISTS', w) == 1 then redis.call('HINCRBY', w, 'held', fmt(-a)) end
      if h[4] == '1' and a > 0 and redis.call('EXISTS', kw) == 1 then redis.call('HINCRBY', kw, 'held', fmt(-a)) end
      redis.call('DEL', hold, 'pg:hr:' .. id)
      redis.call('ZREM', KEYS[1], ARGV[i + 4])
      released = released + 1
    end
    -- the charge (if any) is in PostgreSQL only: reload these wallets
    redis.call('HDEL', bw, 'ok')
    redis.call('HDEL', kw, 'ok')
    redis.call('HDEL', gw, 'ok')
  end
  redis.call('HDEL', bw, 'tok')
end
return released
