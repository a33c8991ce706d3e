-- Check the billing rules and hold money for one request, in one call (docs/billing.md,
-- "Reserve, then settle"). All keys share the user's hash tag.
-- KEYS[1] the user's balance wallet   (ok = fresh until ms, bal, held, tok = load token)
-- KEYS[2] the key's quota wallet      (ok, q (-1 = none), used, held)
-- KEYS[3] the user's group wallet     (ok, sid (0 = no subscription), l1..l3 (-1 = none),
--                                      u1..u3 used now, e1..e3 window ends ms, held)
-- KEYS[4] the hold                    (k, g, m, q, a, x)
-- KEYS[5] the sweeper's index of holds by expiry
-- KEYS[6] the request's holder index (user id), so another user's admission or report of
--         the same request id is recognised
-- ARGV: 1 now ms, 2 want, 3 need, 4 mode (b|s), 5 key id, 6 group id, 7 hold expiry ms,
--       8 wallet key TTL ms, 9 extend (1|0), 10 load token, 11 index member,
--       12 loaded (1|0), then when loaded the state read from PostgreSQL:
--       13 bal, 14 q, 15 kused, 16 sid, 17-19 l1..l3, 20-22 u1..u3, 23-25 e1..e3, 26 fresh-until ms
-- Returns {status, ...}:
--   {'held', amount, mode, sid, keyquota, existing(1|0)}  admitted (or extended / existing)
--   {'load', token}           a wallet must be loaded from PostgreSQL first, under token
--   {'refuse', kind, a, b}    balance|quota: a = available; window: a = index, b = end ms; nosub
--   {'mismatch'}              the request id is held for another key or group
--   {'none'}                  extend: the request holds nothing
local now = tonumber(ARGV[1])
local function n(s) return tonumber(s) or 0 end
-- '%.0f' of -0 is "-0", which HINCRBY refuses
local function fmt(x) if x == 0 then return '0' end return string.format('%.0f', x) end

local hold = KEYS[4]
local me = string.match(ARGV[11], '^(%d+)/')
local owner = redis.call('GET', KEYS[6])
if owner and owner ~= me then return {'mismatch'} end
local existing = redis.call('HMGET', hold, 'k', 'g', 'm', 'q', 'a', 's')
local extend = ARGV[9] == '1'
local mode = ARGV[4]
if existing[1] then
  if existing[1] ~= ARGV[5] or existing[2] ~= ARGV[6] then return {'mismatch'} end
  if not extend then return {'held', existing[5], existing[3], existing[6], existing[4], '1'} end
  mode = existing[3]
elseif extend then
  return {'none'}
end

local bw, kw, gw = KEYS[1], KEYS[2], KEYS[3]
local mw = bw
if mode == 's' then mw = gw end

-- A load applies only while the user's load token, set before its PostgreSQL read, lives: a
-- settlement in between deletes it, so an older read never overwrites a newer charge.
-- Concurrent loaders share the token (the first sets it), so none starves the others.
local tok = ARGV[10]
if ARGV[12] == '1' and redis.call('HGET', bw, 'tok') == tok then
  local fresh = ARGV[26]
  redis.call('HSET', bw, 'bal', ARGV[13], 'ok', fresh)
  redis.call('HSET', kw, 'q', ARGV[14], 'used', ARGV[15], 'ok', fresh)
  redis.call('HSET', gw, 'sid', ARGV[16], 'l1', ARGV[17], 'l2', ARGV[18], 'l3', ARGV[19],
    'u1', ARGV[20], 'u2', ARGV[21], 'u3', ARGV[22], 'e1', ARGV[23], 'e2', ARGV[24], 'e3', ARGV[25], 'ok', fresh)
  redis.call('HDEL', bw, 'tok')
end
for _, w in ipairs({mw, kw}) do
  local ok = redis.call('HGET', w, 'ok')
  if not ok or tonumber(ok) <= now then
    local t = redis.call('HGET', bw, 'tok')
    if not t then
      t = tok
      redis.call('HSET', bw, 'tok', t)
    end
    redis.call('PEXPIRE', bw, ARGV[8])
    redis.call('PEXPIRE', kw, ARGV[8])
    redis.call('PEXPIRE', gw, ARGV[8])
    return {'load', t}
  end
end

local want, need = n(ARGV[2]), n(ARGV[3])
local had = 0
if extend then
  had = n(existing[5])
  local target = want
  want = target - had
  if want <= 0 then return {'held', existing[5], existing[3], existing[6], existing[4], '1'} end
  need = math.max(0, math.min(need, target) - had)
end

local avail = want
local sid = '0'
if mode == 's' then
  local g = redis.call('HMGET', gw, 'sid', 'held', 'l1', 'l2', 'l3', 'u1', 'u2', 'u3', 'e1', 'e2', 'e3')
  sid = g[1]
  if not extend and (not sid or sid == '0') then return {'refuse', 'nosub'} end
  local held = n(g[2])
  local exhausted, exEnd = -1, 0
  local room = 9007199254740992
  for i = 1, 3 do
    local limit = n(g[2 + i])
    if limit >= 0 then
      local used = n(g[5 + i])
      local left = limit - used - held
      if used >= limit or left < need then
        local e = n(g[8 + i])
        if exhausted < 0 or e > exEnd then exhausted, exEnd = i, e end
      end
      room = math.min(room, left)
    end
  end
  if exhausted > 0 then return {'refuse', 'window', tostring(exhausted), fmt(exEnd)} end
  avail = math.min(avail, room)
else
  local b = redis.call('HMGET', bw, 'bal', 'held')
  local bal = n(b[1])
  local room = bal - n(b[2])
  if bal <= 0 or room < need then return {'refuse', 'balance', fmt(math.max(room, 0))} end
  avail = math.min(avail, room)
end
local k = redis.call('HMGET', kw, 'q', 'used', 'held')
local q = n(k[1])
local keyq = '0'
if extend then keyq = existing[4] elseif q >= 0 then keyq = '1' end
if q >= 0 then
  local used = n(k[2])
  local room = q - used - n(k[3])
  if used >= q or room < need then return {'refuse', 'quota', fmt(math.max(room, 0))} end
  avail = math.min(avail, room)
end
local amount = math.max(avail, 0)

if extend then
  sid = existing[6]
  if amount <= 0 then return {'held', existing[5], existing[3], existing[6], existing[4], '1'} end
  redis.call('HINCRBY', hold, 'a', fmt(amount))
else
  redis.call('HSET', hold, 'k', ARGV[5], 'g', ARGV[6], 'm', mode, 's', sid, 'q', keyq, 'a', fmt(amount), 'x', ARGV[7])
  redis.call('ZADD', KEYS[5], ARGV[7], ARGV[11])
  redis.call('SET', KEYS[6], me, 'PX', ARGV[8])
end
if amount > 0 then
  redis.call('HINCRBY', mw, 'held', fmt(amount))
  if keyq == '1' then redis.call('HINCRBY', kw, 'held', fmt(amount)) end
end
redis.call('PEXPIRE', mw, ARGV[8])
redis.call('PEXPIRE', kw, ARGV[8])
return {'held', fmt(had + amount), mode, sid, keyq, extend and '1' or '0'}
