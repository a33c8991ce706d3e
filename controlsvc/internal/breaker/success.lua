-- An answered attempt of an (account, model): KEYS[1] the breaker hash, KEYS[2] the
-- account's dial failure count; ARGV model, grant id, now (ms). The account was reachable,
-- so its dial back-off starts again from the first step. A half-open breaker (or the
-- probe's own answer) closes; an open one stays open for a request admitted before it
-- opened; a closed one keeps its window. Answers 1 when it closed a breaker.
redis.call('DEL', KEYS[2])
local now = tonumber(ARGV[3])
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local b = cjson.decode(raw)
if (b.ou or 0) == 0 then return 0 end
if now < b.ou and (b.p or '') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
