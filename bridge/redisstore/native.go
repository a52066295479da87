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
	args := []any{ms(cmd.Obs.At), ttlMS(s.opts.SessionTTL), ttlMS(s.opts.DedupeTTL), eventMember(cmd.EventID), id, cmd.Identity.Issuer, cmd.Identity.Subject, group, 2 * len(cmd.Outbox), cmd.Obs.Consumer}
	if args, err = entryArgs(args, cmd.Outbox, true); err != nil {
		return bridge.Session{}, err
	}
	if cmd.BoundElsewhereNote != nil {
		if args, err = entryArgs(args, []bridge.OutboxEntry{*cmd.BoundElsewhereNote}, true); err != nil {
			return bridge.Session{}, err
		}
	}
	res, err := s.run(ctx, "native step-up", nativeStepUpScript, []string{s.k.session(key), s.k.dedupe(key), s.k.streams[p]}, args...)
	if err != nil {
		return bridge.Session{}, err
	}
	if res[0] != "ok" {
		if len(res) > 1 && res[1] == "noted" {
			s.enqueued(int(p))
		}
		return bridge.Session{}, refusal(fmt.Sprint(res[0]), nil)
	}
	if len(cmd.Outbox) > 0 {
		s.enqueued(int(p))
	}
	return sessionReply(key, res, 1)
}
