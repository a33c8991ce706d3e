-- Release leases and/or queue entries of one slot set, and wake its waiters.
-- KEYS[1]  the slot set
-- KEYS[2]  the wait queue
-- KEYS[3]  the waiters' expiry
-- ARGV[1]  the channel on which freed slots are announced
-- ARGV[2]  the message: the set's tag, e.g. "u:42"
-- ARGV[3…] grant ids
-- Publishes only when someone waits: a release nobody waits for costs no message.
-- Returns the number of leases removed.
local grants = {}
for i = 3, #ARGV do
  grants[#grants + 1] = ARGV[i]
end
if #grants == 0 then
  return 0
end
local n = redis.call('ZREM', KEYS[1], unpack(grants))
local w = redis.call('ZREM', KEYS[2], unpack(grants))
redis.call('ZREM', KEYS[3], unpack(grants))
if (n > 0 or w > 0) and redis.call('ZCARD', KEYS[2]) > 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return n
