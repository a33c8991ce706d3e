-- Claims the half-open probe of an (account, model): KEYS[1] the breaker hash, ARGV model,
-- grant id, now (ms), probe TTL (ms). Answers 1 when the grant holds the probe now (it
-- may send the one request that tests the account), 0 when the breaker is open or another
-- grant's probe is in flight, 2 when the breaker is closed (nothing to claim).
local now = tonumber(ARGV[3])
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 2 end
local b = cjson.decode(raw)
if (b.x or 0) < now or (b.ou or 0) == 0 then return 2 end
if now < b.ou then return 0 end
if (b.p or '') ~= '' and b.p ~= ARGV[2] and (b.pu or 0) > now then return 0 end
b.p = ARGV[2]
b.pu = now + tonumber(ARGV[4])
if b.x < b.pu then b.x = b.pu end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(b))
local ttl = redis.call('PTTL', KEYS[1])
if ttl < b.x - now then
  redis.call('PEXPIRE', KEYS[1], b.x - now)
end
return 1
