-- Live leases and live waiters of a slot set, purging expired members first.
-- KEYS[1]  the slot set
-- KEYS[2]  the wait queue
-- KEYS[3]  the waiters' expiry
-- Returns {live, waiting}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
if #gone > 0 then
  redis.call('ZREM', KEYS[2], unpack(gone))
  redis.call('ZREM', KEYS[3], unpack(gone))
end
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
