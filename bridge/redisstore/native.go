package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Recorded logins (platform-native step-up): one string per (brand,
// subject) at
//
//	stepup:{pN}:lg:<len(brand)>:<brand>:<subject>   "<expiry ms>|<v>|<at ms>|<record JSON>"
//
// in the partition of bridge.LoginKey, with a real TTL at the expiry. The
// expiry is also in the value because "now" is the caller's clock; v (1
// verified, 0 hint) and the login time let the script keep the live record
// that wins without decoding JSON.

func (k *keys) login(brand, subject string) string {
	return k.tags[bridge.LoginKey(brand, subject).Partition()] + "lg:" + strconv.Itoa(len(brand)) + ":" + brand + ":" + subject
}

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
// 6 issuer, 7 subject, 8 consumer group, 9.. outbox entries.
// Returns {"ok", session} or {"dup"|"notfound"|"closed"|"stepped"|"bound"}.
var nativeStepUpScript = redis.NewScript(prelude + `
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if seen(KEYS[2], ARGV[4], now) then return {'dup'} end
local s, err = load(KEYS[1], now, ttl)
if err then return err end
if not s then return {'notfound'} end
if s.st == 'c' then return {'closed'} end
if s.st == 's' then
  local ok, cur = pcall(cjson.decode, s.id or '')
  if ok and type(cur) == 'table' and cur.iss == ARGV[6] and cur.sub == ARGV[7] then return {'stepped'} end
  return {'bound'}
end
mark(KEYS[2], ARGV[4], now, tonumber(ARGV[3]))
s.ua = ARGV[1]
stepup(s, ARGV[5], ARGV[1])
local raw = save(KEYS[1], s, ttl)
enqueue(KEYS[3], ARGV[8], 9, ARGV[5])
return {'ok', raw}
`)

// RecordLogin implements bridge.LoginStore.
func (s *Store) RecordLogin(ctx context.Context, rec bridge.LoginRecord, expiresAt time.Time) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("redisstore: encode login: %w", err)
	}
	v := "0"
	if rec.Verified {
		v = "1"
	}
	at := strconv.FormatInt(ms(rec.At), 10)
	val := strconv.FormatInt(ms(expiresAt), 10) + "|" + v + "|" + at + "|" + string(b)
	res, err := recordLoginScript.Run(ctx, s.c, []string{s.k.login(rec.Brand, rec.Identity.Subject)}, ms(rec.At), ms(expiresAt), v, at, val).Text()
	if err != nil {
		return s.fail(ctx, "record login", err)
	}
	if res == "kept" {
		return bridge.ErrLoginSuperseded
	}
	return nil
}

// LatestLogin implements bridge.LoginStore.
func (s *Store) LatestLogin(ctx context.Context, brand, subject string, now time.Time) (bridge.LoginRecord, error) {
	raw, err := s.c.Get(ctx, s.k.login(brand, subject)).Result()
	if errors.Is(err, redis.Nil) {
		return bridge.LoginRecord{}, bridge.ErrNotFound
	}
	if err != nil {
		return bridge.LoginRecord{}, s.fail(ctx, "latest login", err)
	}
	parts := strings.SplitN(raw, "|", 4)
	if len(parts) != 4 {
		return bridge.LoginRecord{}, errors.New("redisstore: corrupt login record")
	}
	expMS, perr := strconv.ParseInt(parts[0], 10, 64)
	body := parts[3]
	if perr != nil {
		return bridge.LoginRecord{}, errors.New("redisstore: corrupt login record")
	}
	if ms(now) >= expMS {
		return bridge.LoginRecord{}, bridge.ErrNotFound
	}
	var rec bridge.LoginRecord
	if err := json.Unmarshal([]byte(body), &rec); err != nil {
		return bridge.LoginRecord{}, fmt.Errorf("redisstore: decode login: %w", err)
	}
	return rec, nil
}

// NativeStepUp implements bridge.LoginStore.
func (s *Store) NativeStepUp(ctx context.Context, cmd bridge.NativeStepUp) (bridge.Session, error) {
	id, err := json.Marshal(cmd.Identity)
	if err != nil {
		return bridge.Session{}, fmt.Errorf("redisstore: encode identity: %w", err)
	}
	key := cmd.Obs.Key
	p := key.Partition()
	args := []any{ms(cmd.Obs.At), ttlMS(s.opts.SessionTTL), ttlMS(s.opts.DedupeTTL), eventMember(cmd.EventID), id, cmd.Identity.Issuer, cmd.Identity.Subject, group}
	if args, err = entryArgs(args, cmd.Outbox, true); err != nil {
		return bridge.Session{}, err
	}
	res, err := s.run(ctx, "native step-up", nativeStepUpScript, []string{s.k.session(key), s.k.dedupe(key), s.k.streams[p]}, args...)
	if err != nil {
		return bridge.Session{}, err
	}
	if res[0] != "ok" {
		return bridge.Session{}, refusal(fmt.Sprint(res[0]), nil)
	}
	if len(cmd.Outbox) > 0 {
		s.enqueued()
	}
	return sessionReply(key, res, 1)
}
