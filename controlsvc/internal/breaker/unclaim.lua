-- Gives back a probe claim the grant did not use: KEYS[1] the breaker hash, ARGV model,
-- grant id. Another grant's claim is left alone.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local b = cjson.decode(raw)
if (b.p or '') ~= ARGV[2] then return 0 end
b.p = ''
b.pu = 0
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(b))
return 1
