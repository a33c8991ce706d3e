-- One failure of an (account, model): KEYS[1] the account's breaker hash, ARGV model,
-- now (ms), reason, grant id, threshold, window (ms), base cool-down (ms), cap (ms).
-- Closed: the failure joins the window (the last `threshold` failure times); the
-- threshold-th within the window opens the breaker for the base cool-down. Open: counted
-- only. Half-open (the cool-down over): a failure of the probe (or with no probe in
-- flight) re-opens it with the cool-down doubled, at most the cap. Answers
-- {opened (0/1), open_until}.
local now = tonumber(ARGV[2])
local threshold = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local base = tonumber(ARGV[7])
local cap = tonumber(ARGV[8])
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local b = {f = {}, n = 0, ou = 0, cd = 0, r = '', p = '', pu = 0, x = 0}
if raw then
  b = cjson.decode(raw)
  if (b.x or 0) < now then
    b = {f = {}, n = 0, ou = 0, cd = 0, r = '', p = '', pu = 0, x = 0}
  end
end
b.r = ARGV[3]
local opened = 0
if (b.ou or 0) > 0 then
  b.n = (b.n or 0) + 1
  local probe = b.p or ''
  if now >= b.ou and (probe == '' or probe == ARGV[4] or (b.pu or 0) <= now) then
    b.cd = math.min((b.cd or base) * 2, cap)
    b.ou = now + b.cd
    b.p = ''
    b.pu = 0
    opened = 1
  end
else
  local f = {}
  for _, t in ipairs(b.f or {}) do
    if t > now - window then f[#f + 1] = t end
  end
  f[#f + 1] = now
  while #f > threshold do table.remove(f, 1) end
  b.f = f
  b.n = #f
  if #f >= threshold then
    b.f = {}
    b.cd = math.min(base, cap)
    b.ou = now + b.cd
    b.p = ''
    b.pu = 0
    opened = 1
  end
end
-- The field is forgotten (closed) once its history can no longer matter: an open breaker
-- a while after its cool-down, a closed one after its window.
if b.ou > 0 then
  b.x = b.ou + 2 * b.cd + window
else
  b.x = now + window
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(b))
local ttl = redis.call('PTTL', KEYS[1])
if ttl < b.x - now then
  redis.call('PEXPIRE', KEYS[1], b.x - now)
end
return {opened, b.ou}
