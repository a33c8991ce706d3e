-- Count the live leases of a slot set, purging expired ones first.
-- KEYS[1]  the slot set
-- Returns the number of live leases.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
