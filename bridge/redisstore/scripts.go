package redisstore

import "github.com/redis/go-redis/v9"

// All Lua the store runs lives in this file. Rules every script follows:
//
//   - Every key it touches is in KEYS, and all KEYS of one call share the
//     hash tag {pN} of one virtual partition, so the same script runs on a
//     Redis Cluster (one slot per call).
//   - "Now" comes from the caller (ARGV, unix milliseconds, the injected
//     clock); logical expiry never uses Redis TIME. Real TTLs (PEXPIRE, SET
//     PX) are set relative to now so Redis frees memory on its own.
//   - A command the domain refuses returns a status before the first write:
//     Redis does not roll a script back, so checks come first, writes last.
//   - Results are arrays whose first element is a status: "ok" or one of
//     dup, notfound, closed, stepped, bound, toomany, invalid (mapped to the
//     bridge sentinels in Go).
//
// A session is one string value: a MessagePack map (Redis's built-in
// cmsgpack, in C) of short field names to string values (pl platform, cs
// consumer, ch channel, st state, sa started at, ua updated at, th ticket
// hash, lx link expiry, ln links issued, cd code hash, cx code expiry, ca
// code attempts, pd pending identity JSON, id identity JSON, su stepped-up
// at, ac authenticated consumer after a native step-up; times in unix ms;
// empty values are left out). The state is one letter: a anonymous, l link
// issued, v login verified, s stepped up, c closed. One string beats a hash
// here: identity JSON is longer than hash-max-listpack-value, which would
// turn a hash into a hashtable of twice the size. MessagePack rather than a
// format parsed in Lua: a Lua-level decode and encode cost ~13 µs of Redis
// time per call, cmsgpack ~2 µs (session.go decodes it in Go). Sessions in
// that older format (first byte a letter) are still read, and saved back
// as MessagePack (see legacy).
//
// The dedupe set of a conversation is a sorted set: member = 12 bytes of
// SHA-256(event id), score = the unix ms until which the id counts as seen.
//
// An outbox stream entry has fields i (entry id), b (entry JSON, identity
// included), n (attempts made before this stream entry existed). A delayed
// retry is a sorted-set member "<n>:<len(i)>:<i><b>" scored by its due time.

// prelude is shared by the scripts that need it (Redis has no shared Lua
// between EVAL scripts, so it is prepended). Every call runs it, making a
// closure per function: the observe script, which runs for nearly every
// event, takes only the parts it uses (luaSession + luaDedupe).
const prelude = luaSession + luaStepUp + luaDedupe + luaOutbox

// luaSession reads and writes sessions.
const luaSession = `
local function int(x) return string.format('%d', x) end

-- encode packs a session table (see above): empty values are left out,
-- fields a newer version added are kept.
local function encode(s)
  for k, v in pairs(s) do
    if v == '' then s[k] = nil end
  end
  return cmsgpack.pack(s)
end

-- legacy reads a session written before MessagePack (<name><len>:<value>
-- fields, see session.go); nil if it is not one.
local function legacy(raw)
  local s, pos = {}, 1
  while pos <= #raw do
    local k, n = string.match(raw, '^(%a+)(%d+):', pos)
    if not k then return nil end
    local start = pos + #k + #n + 1
    s[k] = string.sub(raw, start, start + tonumber(n) - 1)
    pos = start + tonumber(n)
  end
  return s
end

-- load returns the session at key if it is live at now (updated less than
-- ttl ms before now), else nil. A corrupt value is an error reply, second.
local function load(key, now, ttl)
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local ok, s
  if string.find(raw, '^%a') then
    s = legacy(raw)
    ok = s ~= nil
  else
    ok, s = pcall(cmsgpack.unpack, raw)
  end
  if not ok or type(s) ~= 'table' then return nil, redis.error_reply('ERR stepup: corrupt session') end
  if tonumber(s.ua or '0') + ttl > now then return s end
  return nil
end

local function save(key, s, ttl)
  local raw = encode(s)
  redis.call('SET', key, raw, 'PX', ttl)
  return raw
end

-- observe creates the session (s nil) or refreshes it, as memstore does.
local function observe(s, at, platform, consumer, channel)
  if not s then s = {st = 'a', sa = at, pl = platform} end
  if (s.cs or '') == '' then s.cs = consumer end
  if (s.ch or '') == '' then s.ch = channel end
  if (s.pl or '') == '' then s.pl = platform end
  s.ua = at
  return s
end

local function clearcode(s) s.cd = nil; s.cx = nil; s.ca = nil; s.pd = nil end
`

// luaStepUp records a step-up.
const luaStepUp = `
-- boundto reports whether stepped-up session s carries the identity iss/sub.
local function boundto(s, iss, sub)
  local ok, cur = pcall(cjson.decode, s.id or '')
  return ok and type(cur) == 'table' and cur.iss == iss and cur.sub == sub
end

local function stepup(s, ident, at)
  clearcode(s)
  s.th = nil
  s.st = 's'
  s.id = ident
  s.su = at
end
`

// luaDedupe keeps the dedupe sets.
const luaDedupe = `
-- seen reports whether member m is in the dedupe set and not expired at now.
local function seen(key, m, now)
  if m == '' then return false end
  local sc = redis.call('ZSCORE', key, m)
  return sc ~= false and tonumber(sc) > now
end

-- mark records member m until now+ttl and drops members expired at now.
local function mark(key, m, now, ttl)
  if m == '' then return end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, now + ttl, m)
  redis.call('PEXPIRE', key, ttl)
end
`

// luaOutbox writes and reads outbox streams.
const luaOutbox = `
local function ensuregroup(stream, group)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  end
end

-- enqueue appends the outbox entries in ARGV[first..] (pairs: entry id,
-- entry JSON) to the stream; a non-nil identity JSON is spliced into each.
local function enqueue(stream, group, first, ident, last)
  last = last or #ARGV
  if first > last then return end
  ensuregroup(stream, group)
  for i = first, last, 2 do
    local body = ARGV[i + 1]
    if ident then body = string.sub(body, 1, -2) .. ',"identity":' .. ident .. '}' end
    redis.call('XADD', stream, '*', 'i', ARGV[i], 'b', body, 'n', '0')
  end
end

local function fields(list)
  local f = {}
  for i = 1, #list, 2 do f[list[i]] = list[i + 1] end
  return f
end

-- current reports whether stream entry id is pending with exactly
-- deliveries deliveries, i.e. the handle presenting it still holds it.
local function current(stream, group, id, deliveries)
  local p = redis.pcall('XPENDING', stream, group, id, id, 1)
  if type(p) ~= 'table' or p.err or #p == 0 then return false end
  return tostring(p[1][4]) == deliveries
end
`

// observeScript: Observe and Close, the script of nearly every event.
// KEYS: 1 session, 2 dedupe set.
// ARGV: 1 now (ms), 2 session ttl (ms), 3 dedupe ttl (ms), 4 event member
// ("" = no dedupe), 5 platform, 6 consumer, 7 channel, 8 "1" to close,
// 9 now + dedupe ttl (ms).
// Returns "ok" or "dup": no session, which no caller needs. It reads the
// session first so that a corrupt one fails before any write, then claims
// the event id with one ZADD NX (seen + mark take ZSCORE and ZADD).
// Arguments go to redis.call as the strings the caller sent: a Lua number
// is formatted with sprintf("%.14g") on the way, which was a tenth of
// Redis' time on this path.
var observeScript = redis.NewScript(luaSession + luaDedupe + `
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local cur, err = load(KEYS[1], now, ttl)
if err then return err end
if ARGV[4] ~= '' then
  if redis.call('ZADD', KEYS[2], 'NX', ARGV[9], ARGV[4]) == 0 then
    if seen(KEYS[2], ARGV[4], now) then return 'dup' end
    redis.call('ZADD', KEYS[2], ARGV[9], ARGV[4]) -- seen once, expired since
  end
  -- Expired ids are dropped on one event in eight (by the id's hash): they
  -- pile up only in conversations longer than the dedupe TTL, and lingering
  -- a few events longer costs less than a ZREMRANGEBYSCORE on every event.
  -- With the shorter prelude: ~2 of ~24 µs of Redis time per call (median
  -- of 16 serial rounds of 10 000 calls, old and new alternating).
  if string.byte(ARGV[4], 1) % 8 == 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) end
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
local s = observe(cur, ARGV[1], ARGV[5], ARGV[6], ARGV[7])
if ARGV[8] == '1' then
  clearcode(s)
  s.th = nil
  s.st = 'c'
end
save(KEYS[1], s, ARGV[2])
return 'ok'
`)

// issueScript: IssueTicket.
// KEYS: 1 session, 2 dedupe set, 3 ticket, 4 outbox stream.
// ARGV: 1 now, 2 session ttl, 3 dedupe ttl, 4 event member, 5 "1" if an
// observation is given, 6 observation time, 7 platform, 8 consumer,
// 9 channel, 10 ticket hash, 11 link expiry (ms), 12 max links (0 = no
// limit), 13 ticket value (the encoded conversation), 14 consumer group,
// 15 the number N of ARGV slots of the outbox entries, 16..15+N outbox
// entries (id, JSON), then refusal notes as triples (refusal status, id,
// JSON), one written when an event's command is refused with that status.
// Returns {"ok", session} or {"dup"|"notfound"|"closed"|"stepped"|"toomany"}
// (a refusal that wrote its note has "noted" second).
var issueScript = redis.NewScript(prelude + `
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local nm = tonumber(ARGV[15])
-- refuse answers a refused command; for an event with a note for that
-- refusal, the note is written and the event counts as seen.
local function refuse(status)
  if ARGV[4] ~= '' then
    for i = 16 + nm, #ARGV, 3 do
      if ARGV[i] == status then
        mark(KEYS[2], ARGV[4], now, tonumber(ARGV[3]))
        ensuregroup(KEYS[4], ARGV[14])
        redis.call('XADD', KEYS[4], '*', 'i', ARGV[i + 1], 'b', ARGV[i + 2], 'n', '0')
        return {status, 'noted'}
      end
    end
  end
  return {status}
end
if seen(KEYS[2], ARGV[4], now) then return {'dup'} end
local cur, err = load(KEYS[1], now, ttl)
if err then return err end
if not cur and ARGV[5] ~= '1' then return {'notfound'} end
local st = cur and cur.st or 'a'
if st == 'c' then return refuse('closed') end
if st == 's' then return refuse('stepped') end
local links = tonumber(cur and cur.ln or '0')
local max = tonumber(ARGV[12])
if max > 0 and links >= max then return refuse('toomany') end

mark(KEYS[2], ARGV[4], now, tonumber(ARGV[3]))
local s
if ARGV[5] == '1' then
  local at = tonumber(ARGV[6])
  local c2 = cur
  if c2 and tonumber(c2.ua) + ttl <= at then c2 = nil end
  s = observe(c2, ARGV[6], ARGV[7], ARGV[8], ARGV[9])
else
  s = cur
  s.ua = ARGV[1]
end
s.st = 'l'
s.th = ARGV[10]
s.lx = ARGV[11]
s.ln = int(tonumber(s.ln or '0') + 1)
clearcode(s)
local raw = save(KEYS[1], s, ttl)
redis.call('SET', KEYS[3], ARGV[13], 'PX', math.max(1, tonumber(ARGV[11]) - now))
enqueue(KEYS[4], ARGV[14], 16, nil, 15 + nm)
return {'ok', raw}
`)

// beginScript: BeginLogin (consume the ticket, store the transaction).
// KEYS: 1 ticket, 2 session, 3 login transaction.
// ARGV: 1 now, 2 session ttl, 3 ticket hash, 4 expected ticket value,
// 5 brand, 6 transaction JSON, 7 transaction expiry (ms).
// Returns {"ok", session} or {"invalid"}.
var beginScript = redis.NewScript(prelude + `
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('GET', KEYS[1]) ~= ARGV[4] then return {'invalid'} end
local s, err = load(KEYS[2], now, ttl)
if err then return err end
if not s or s.st ~= 'l' or s.th ~= ARGV[3] or tonumber(s.lx or '0') <= now then return {'invalid'} end
redis.call('DEL', KEYS[1])
s.th = nil
s.ua = ARGV[1]
local raw = save(KEYS[2], s, ttl)
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'b', ARGV[5], 'x', ARGV[7], 'j', ARGV[6])
redis.call('PEXPIRE', KEYS[3], math.max(1, tonumber(ARGV[7]) - now))
return {'ok', raw}
`)

// takeScript: TakeLogin (return and delete the transaction, once).
// KEYS: 1 login transaction.
// ARGV: 1 brand, 2 now.
// Returns {"ok", transaction JSON} or {"invalid"}.
var takeScript = redis.NewScript(`
local t = redis.call('HMGET', KEYS[1], 'b', 'x', 'j')
if not t[1] or t[1] ~= ARGV[1] then return {'invalid'} end
redis.call('DEL', KEYS[1])
if tonumber(t[2]) <= tonumber(ARGV[2]) then return {'invalid'} end
return {'ok', t[3]}
`)

// verifyScript: VerifyLogin.
// KEYS: 1 session, 2 outbox stream.
// ARGV: 1 now, 2 session ttl, 3 identity JSON, 4 issuer, 5 subject, 6 code
// hash ("" = binding none: step up now), 7 code expiry, 8 consumer group,
// 9.. outbox entries (written only when stepping up).
// Returns {"ok", session} or {"notfound"|"closed"|"stepped"|"bound"}.
var verifyScript = redis.NewScript(prelude + `
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local s, err = load(KEYS[1], now, ttl)
if err then return err end
if not s then return {'notfound'} end
if s.st == 'c' then return {'closed'} end
if s.st == 's' then
  if boundto(s, ARGV[4], ARGV[5]) then return {'stepped'} end
  return {'bound'}
end
s.ua = ARGV[1]
if ARGV[6] ~= '' then
  s.st = 'v'
  s.cd = ARGV[6]
  s.cx = ARGV[7]
  s.ca = nil
  s.pd = ARGV[3]
  return {'ok', save(KEYS[1], s, ttl)}
end
stepup(s, ARGV[3], ARGV[1])
local raw = save(KEYS[1], s, ttl)
enqueue(KEYS[2], ARGV[8], 9, ARGV[3])
return {'ok', raw}
`)

// confirmScript: ConfirmCode.
// KEYS: 1 session, 2 dedupe set, 3 outbox stream.
// ARGV: 1 now (the message time), 2 session ttl, 3 dedupe ttl, 4 event
// member, 5 platform, 6 consumer, 7 channel, 8 code hash, 9 max attempts,
// 10 consumer group, 11 the number N of ARGV slots of the match entries,
// 12..11+N outbox entries (id, JSON; written, with the identity, on a
// match), then feedback entries as triples (result, id, JSON), each written
// only when the code's result is that result.
// Returns {"ok", result, session} or {"dup"}.
var confirmScript = redis.NewScript(prelude + `
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if seen(KEYS[2], ARGV[4], now) then return {'dup'} end
local cur, err = load(KEYS[1], now, ttl)
if err then return err end
mark(KEYS[2], ARGV[4], now, tonumber(ARGV[3]))
local s = observe(cur, ARGV[1], ARGV[5], ARGV[6], ARGV[7])
local res
if s.st ~= 'v' then
  res = 'no_pending'
elseif tonumber(s.cx or '0') <= now then
  clearcode(s)
  s.st = 'a'
  res = 'expired'
elseif s.cd == ARGV[8] then
  stepup(s, s.pd, ARGV[1])
  res = 'matched'
else
  local a = tonumber(s.ca or '0') + 1
  if a >= tonumber(ARGV[9]) then
    clearcode(s)
    s.st = 'a'
    res = 'locked'
  else
    s.ca = int(a)
    res = 'mismatch'
  end
end
local raw = save(KEYS[1], s, ttl)
local nm = tonumber(ARGV[11])
if res == 'matched' then enqueue(KEYS[3], ARGV[10], 12, s.id, 11 + nm) end
for i = 12 + nm, #ARGV, 3 do
  if ARGV[i] == res then
    ensuregroup(KEYS[3], ARGV[10])
    redis.call('XADD', KEYS[3], '*', 'i', ARGV[i + 1], 'b', ARGV[i + 2], 'n', '0')
  end
end
return {'ok', res, raw}
`)

// probeScript: how much work one partition has for a claim (read only).
// KEYS: 1 outbox stream, 2 delayed set.
// ARGV: 1 consumer group, 2 now, 3 lease (min idle ms), 4 cap.
// Returns due retries + undelivered entries + expired leases (capped).
var probeScript = redis.NewScript(`
local n = redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[2])
local len = redis.call('XLEN', KEYS[1])
if len > 0 then
  local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])
  if type(p) == 'table' and p.err then
    n = n + len
  else
    n = n + math.max(0, len - p[1])
    if p[1] > 0 then
      n = n + #redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[4])
    end
  end
end
return n
`)

// claimScript: hand out up to count deliveries of one partition: first
// move due retries from the delayed set into the stream, then take back
// entries whose lease ran out (XAUTOCLAIM), then read new ones. An entry
// whose entry id is marked done (see ackScript) is settled here instead of
// handed out, so a delivery fresh from a claim needs no check before its
// first attempt (bridge.Delivery.ClaimedAt).
// KEYS: 1 outbox stream, 2 delayed set, 3 done set.
// Last, it forgets consumers that hold nothing and were idle longer than
// ARGV[6]: worker names carry host and pid, so without this every restart
// of every replica would leave consumers behind in the groups forever. A
// consumer with pending entries is never deleted (that would drop them).
// ARGV: 1 consumer group, 2 consumer (worker), 3 now, 4 lease (min idle
// ms), 5 count, 6 consumer idle limit (ms).
// Returns {{stream id, {field, value, ...}, deliveries}, ...}.
var claimScript = redis.NewScript(prelude + `
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local count = tonumber(ARGV[5])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, 256)
if #due > 0 then ensuregroup(stream, group) end
for _, m in ipairs(due) do
  local n, il = string.match(m, '^(%d+):(%d+):')
  if n then
    local off = #n + #il + 3
    local id = string.sub(m, off, off + tonumber(il) - 1)
    redis.call('XADD', stream, '*', 'i', id, 'b', string.sub(m, off + tonumber(il)), 'n', n)
  end
  redis.call('ZREM', KEYS[2], m)
end
if redis.call('EXISTS', stream) == 0 then return {} end
local out = {}
local now = tonumber(ARGV[3])
local hasdone = redis.call('EXISTS', KEYS[3]) == 1
-- take hands out stream entry e (id, fields) unless its entry id is done.
local function take(e, deliveries)
  if hasdone then
    local f = fields(e[2])
    local sc = f.i and redis.call('ZSCORE', KEYS[3], f.i)
    if sc and tonumber(sc) > now then
      redis.call('XACK', stream, group, e[1])
      redis.call('XDEL', stream, e[1])
      return
    end
  end
  out[#out + 1] = {e[1], e[2], deliveries}
end
local cursor, rounds = '0-0', 0
repeat
  local r = redis.pcall('XAUTOCLAIM', stream, group, consumer, ARGV[4], cursor, 'COUNT', count - #out)
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'NOGROUP', 1, true) then
      redis.call('XGROUP', 'CREATE', stream, group, '0')
      break
    end
    return r
  end
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    if type(e) == 'table' and type(e[2]) == 'table' then
      local p = redis.call('XPENDING', stream, group, e[1], e[1], 1)
      take(e, p[1][4])
    end
  end
  rounds = rounds + 1
until cursor == '0-0' or #out >= count or rounds >= 4
if #out < count then
  local x = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count - #out, 'STREAMS', stream, '>')
  if x then
    for _, e in ipairs(x[1][2]) do take(e, 1) end
  end
end
local cs = redis.pcall('XINFO', 'CONSUMERS', stream, group)
if type(cs) == 'table' and not cs.err then
  for _, c in ipairs(cs) do
    local f = fields(c)
    if f.name ~= consumer and tonumber(f.pending) == 0 and tonumber(f.idle) > tonumber(ARGV[6]) then
      redis.call('XGROUP', 'DELCONSUMER', stream, group, f.name)
    end
  end
end
return out
`)

// ackScript: Ack (the effect happened: remove the entry whoever holds it,
// and mark its entry id done so that a copy of it handed out again, e.g. a
// retry scheduled by a worker whose lease had run out, is not delivered:
// see renewScript).
// KEYS: 1 outbox stream, 2 done set (member entry id, score = the unix ms
// until which the marker counts).
// ARGV: 1 consumer group, 2 stream id, 3 entry id ("" = no marker), 4 now
// (ms), 5 marker retention (ms).
var ackScript = redis.NewScript(`
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local n = redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then
  local now, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return n
`)

// renewScript: the check before each attempt (bridge.Renewer). An entry
// id marked done is settled here (removed, whoever holds it) and refused;
// a stale handle (settled, or handed to another worker since) is refused;
// otherwise the lease restarts (XCLAIM JUSTID resets the idle time without
// counting a delivery).
// KEYS: 1 outbox stream, 2 done set.
// ARGV: 1 consumer group, 2 stream id, 3 deliveries of the handle, 4 entry
// id, 5 now (ms).
// Returns 1 (go ahead), 0 (stale) or 2 (done already).
var renewScript = redis.NewScript(prelude + `
local sc = redis.call('ZSCORE', KEYS[2], ARGV[4])
if sc and tonumber(sc) > tonumber(ARGV[5]) then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
  return 2
end
if not current(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
redis.call('XCLAIM', KEYS[1], ARGV[1], p[1][2], 0, ARGV[2], 'JUSTID')
return 1
`)

// retryScript: Retry (move the entry from the stream to the delayed set).
// A stale handle (the lease ran out and another worker holds the entry, or
// it is settled already) changes nothing.
// KEYS: 1 outbox stream, 2 delayed set.
// ARGV: 1 consumer group, 2 stream id, 3 deliveries of the handle, 4 due (ms).
// Returns 1 if moved, 0 if stale.
var retryScript = redis.NewScript(prelude + `
if not current(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if #e == 0 then return 0 end
local f = fields(e[1][2])
local n = tonumber(f.n or '0') + tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], int(n) .. ':' .. #f.i .. ':' .. f.i .. f.b)
return 1
`)

// buryScript: Bury (move the entry to the dead letters, bounded).
// KEYS: 1 outbox stream, 2 dead-letter stream.
// ARGV: 1 consumer group, 2 stream id, 3 deliveries of the handle ("" =
// any), 4 reason, 5 now (ms), 6 max dead letters (approximate), 7 retention
// (ms; trimmed by the Redis clock because stream ids carry it).
// Returns 1 if buried, 0 if stale.
var buryScript = redis.NewScript(prelude + `
if ARGV[3] ~= '' and not current(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if #e == 0 then return 0 end
local f = fields(e[1][2])
local n = tonumber(f.n or '0') + tonumber(ARGV[3] ~= '' and ARGV[3] or '1')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'i', f.i, 'b', f.b, 'n', int(n), 'r', ARGV[4], 't', ARGV[5])
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[7])
if cutoff > 0 then redis.call('XTRIM', KEYS[2], 'MINID', '~', int(cutoff)) end
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return 1
`)

// replayScript: Replay (a dead letter goes back to the stream with a fresh
// attempt count).
// KEYS: 1 dead-letter stream, 2 outbox stream.
// ARGV: 1 consumer group, 2 dead-letter stream id.
// Returns 1 if replayed, 0 if no such dead letter.
var replayScript = redis.NewScript(prelude + `
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then return 0 end
local f = fields(e[1][2])
ensuregroup(KEYS[2], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'i', f.i, 'b', f.b, 'n', '0')
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
`)

// scripts lists every script (tests check they all load).
var scripts = []*redis.Script{observeScript, issueScript, beginScript, takeScript, verifyScript, confirmScript, probeScript, claimScript, ackScript, renewScript, retryScript, buryScript, replayScript}

// recordLoginScript: RecordLogin.
// KEYS: 1 login.
// ARGV: 1 now (ms), 2 expiry (ms), 3 "1" if verified, 4 login time (ms),
// 5 the value to store.
// Returns "ok" or "kept" (the live record wins: verified over a hint, or
// not older).
var recordLoginScript = redis.NewScript(`
local now, exp = tonumber(ARGV[1]), tonumber(ARGV[2])
if exp <= now then return 'ok' end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cexp, cver, cat = string.match(cur, '^(%d+)|(%d)|(%d+)|')
  if cexp and tonumber(cexp) > now then
    if cver ~= ARGV[3] then
      if cver == '1' then return 'kept' end
    elseif tonumber(cat) >= tonumber(ARGV[4]) then
      return 'kept'
    end
  end
end
redis.call('SET', KEYS[1], ARGV[5], 'PX', exp - now)
return 'ok'
`)

// nativeStepUpScript: NativeStepUp.
// KEYS: 1 session, 2 dedupe set, 3 outbox stream.
// ARGV: 1 now, 2 session ttl, 3 dedupe ttl, 4 event member, 5 identity JSON,
// 6 issuer, 7 subject, 8 consumer group, 9 the number N of ARGV slots of
// the outbox entries, 10 the new (authenticated) consumer, 11..10+N outbox
// entries (id, JSON), then optionally
// one note (id, JSON) written, with the event marked seen, when the
// conversation is bound to another identity.
// Returns {"ok", session} or {"dup"|"notfound"|"closed"|"stepped"|"bound"}
// ("bound", "noted" when the note was written).
var nativeStepUpScript = redis.NewScript(prelude + `
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if seen(KEYS[2], ARGV[4], now) then return {'dup'} end
local s, err = load(KEYS[1], now, ttl)
if err then return err end
if not s then return {'notfound'} end
if s.st == 'c' then return {'closed'} end
if s.st == 's' then
  if boundto(s, ARGV[6], ARGV[7]) then return {'stepped'} end
  local note = 11 + tonumber(ARGV[9])
  if ARGV[4] ~= '' and #ARGV > note then
    mark(KEYS[2], ARGV[4], now, tonumber(ARGV[3]))
    ensuregroup(KEYS[3], ARGV[8])
    redis.call('XADD', KEYS[3], '*', 'i', ARGV[note], 'b', ARGV[note + 1], 'n', '0')
    return {'bound', 'noted'}
  end
  return {'bound'}
end
mark(KEYS[2], ARGV[4], now, tonumber(ARGV[3]))
s.ua = ARGV[1]
s.ac = ARGV[10]
stepup(s, ARGV[5], ARGV[1])
local raw = save(KEYS[1], s, ttl)
enqueue(KEYS[3], ARGV[8], 11, ARGV[5], 10 + tonumber(ARGV[9]))
return {'ok', raw}
`)
