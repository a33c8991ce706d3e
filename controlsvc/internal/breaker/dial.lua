-- One dial failure of an account: KEYS[1] its consecutive dial failure count; ARGV the
-- count's TTL (ms). Answers the count, this failure included.
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
