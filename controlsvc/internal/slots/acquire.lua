-- Acquire a lease on a slot set.
-- KEYS[1]  the slot set (member = grant id, score = lease expiry, Redis TIME ms)
-- ARGV[1]  grant id
-- ARGV[2]  limit (> 0)
-- ARGV[3]  lease TTL in milliseconds
-- Returns 1 when the grant holds a lease afterwards, 0 when the set is full.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  -- re-admission of a grant that already holds a lease: re-arm it, never count it twice
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
return 0
