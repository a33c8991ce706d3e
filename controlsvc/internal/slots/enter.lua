-- Take a slot in FIFO order, or queue for one.
-- KEYS[1]  the slot set (member = grant id, score = lease expiry, Redis TIME ms)
-- KEYS[2]  the wait queue (member = grant id, score = arrival, Redis TIME µs, strictly increasing)
-- KEYS[3]  the waiters' expiry (member = grant id, score = expiry, Redis TIME ms)
-- All three keys share one hash tag, so the script stays in one Redis Cluster slot.
-- ARGV[1]  grant id
-- ARGV[2]  slot limit (> 0)
-- ARGV[3]  lease TTL in milliseconds
-- ARGV[4]  most waiters allowed; 0 = never queue
-- ARGV[5]  life of a queue entry in milliseconds (the wait timeout plus a margin), so a
--          waiter whose controlsvc died leaves the queue by itself
-- Returns 1 when the grant holds a lease afterwards, 0 when it is (still) queued, -1 when
-- it is neither (queue full, or no queueing allowed and no free slot in its turn).
--
-- A grant gets a slot only in its turn: with `live` leases, the waiter at rank r (0-based)
-- is served when live + r < limit, and a newcomer counts as standing behind every waiter.
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nowus = tonumber(t[1]) * 1000000 + tonumber(t[2])
local grant = ARGV[1]
local limit = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local maxw = tonumber(ARGV[4])
local wttl = tonumber(ARGV[5])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowms)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', nowms)
if #gone > 0 then
  redis.call('ZREM', KEYS[2], unpack(gone))
  redis.call('ZREM', KEYS[3], unpack(gone))
end

local function take()
  redis.call('ZADD', KEYS[1], nowms + ttl, grant)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZREM', KEYS[2], grant)
  redis.call('ZREM', KEYS[3], grant)
  return 1
end

if redis.call('ZSCORE', KEYS[1], grant) then
  return take() -- re-admission of a grant that holds a lease: re-arm it, never count twice
end
local live = redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], grant)
local pos = rank
if not pos then
  pos = redis.call('ZCARD', KEYS[2])
end
if live + pos < limit then
  return take()
end
if rank then
  return 0
end
if maxw <= 0 or pos >= maxw then
  return -1
end
local score = nowus
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last == 2 and tonumber(last[2]) >= score then
  score = tonumber(last[2]) + 1
end
redis.call('ZADD', KEYS[2], score, grant)
redis.call('ZADD', KEYS[3], nowms + wttl, grant)
for i = 2, 3 do
  if redis.call('PTTL', KEYS[i]) < wttl then
    redis.call('PEXPIRE', KEYS[i], wttl)
  end
end
return 0
