// Package redisstore is the bridge.Store on Redis (standalone, Sentinel or
// Cluster): the shared state of any number of stateless bridge replicas.
//
// Every state change is one Lua script (EVALSHA, loaded again on NOSCRIPT)
// whose keys are all passed in KEYS and share the hash tag of the
// conversation's virtual partition, so it runs unchanged on a Cluster.
// Outbox entries are written by the same script as the state change that
// causes them, into the partition's stream; workers consume them with a
// consumer group. Everything expires or is bounded: sessions after
// SessionTTL idle, event ids after DedupeTTL, tickets and login transactions
// at their expiry, acknowledged outbox entries are deleted and dead letters
// are capped and trimmed by age. The scripts are in scripts.go, the key
// layout in keys.go.
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Options tune the store.
type Options struct {
	// Clock gives "now" for reads and for the outbox (retry due times);
	// commands carry their own time.
	Clock bridge.Clock
	// Prefix starts every key (default "stepup"); it must not contain
	// braces, which would break the partition hash tags.
	Prefix       string
	SessionTTL   time.Duration // idle sessions are forgotten after this (default 72h)
	DedupeTTL    time.Duration // event ids are remembered this long (default 72h)
	ClaimTimeout time.Duration // a claimed outbox entry idle this long is handed out again (default 1m)
	// IdleWorkerTTL: an outbox consumer (worker name) holding no entries
	// and idle this long is removed from its consumer group (default 1h).
	IdleWorkerTTL time.Duration
	// PollInterval is how often an idle Claim looks for work written by
	// other replicas (default 250ms); entries written through this Store
	// wake one of its waiting Claims at once.
	PollInterval time.Duration
	// DeadLetterMax caps the dead letters kept per partition (approximate,
	// default 10000); DeadLetterRetention drops older ones (default 14 days).
	DeadLetterMax       int64
	DeadLetterRetention time.Duration
	Logger              *slog.Logger
}

// Store is the Redis store. Build it with New.
type Store struct {
	c    redis.UniversalClient
	opts Options
	k    *keys
	log  *slog.Logger

	notCluster atomic.Bool // Ping found the single server is not a Cluster node

	observes *batcher // Observe and Close: one per message, batched under load
	// The TTL arguments of every observe call, boxed once: an int64 put
	// in an interface is an allocation per call.
	sessionTTLArg, dedupeTTLArg any

	// wake carries one signal per batch of outbox entries this store
	// wrote (buffered, so a signal sent while every worker is busy waits
	// for the next one): one waiting Claim sweeps, not all of them.
	wake chan struct{}

	mu        sync.Mutex
	next      uint32    // first partition of the next claim sweep (round robin)
	dirty     []int     // partitions written here since a Claim last looked at them
	wakes     uint64    // requests for a sweep so far (written partitions need none)
	sweeping  int       // sweeps in progress
	sweepAt   time.Time // start of the latest sweep in progress or found empty
	sweepWake uint64    // wakes when that sweep started
}

var _ bridge.Store = (*Store)(nil)

// New returns a store on client. It does not contact Redis: scripts are
// loaded on first use and consumer groups are created with their streams.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisstore: nil client")
	}
	if opts.Clock == nil {
		opts.Clock = bridge.SystemClock{}
	}
	if opts.Prefix == "" {
		opts.Prefix = "stepup"
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redisstore: key prefix %q must not contain braces", opts.Prefix)
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 72 * time.Hour
	}
	if opts.DedupeTTL <= 0 {
		opts.DedupeTTL = 72 * time.Hour
	}
	if opts.ClaimTimeout <= 0 {
		opts.ClaimTimeout = time.Minute
	}
	if opts.IdleWorkerTTL <= 0 {
		opts.IdleWorkerTTL = time.Hour
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.DeadLetterMax <= 0 {
		opts.DeadLetterMax = 10000
	}
	if opts.DeadLetterRetention <= 0 {
		opts.DeadLetterRetention = 14 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{c: client, opts: opts, k: newKeys(opts.Prefix), log: opts.Logger, wake: make(chan struct{}, 1)}
	s.observes = newBatcher(s, observeScript, observeBatches)
	s.sessionTTLArg, s.dedupeTTLArg = ttlMS(opts.SessionTTL), ttlMS(opts.DedupeTTL)
	return s, nil
}

// observeBatches is how many Observe batches may be in flight at once
// before calls queue up to go together (see batcher).
const observeBatches = 4

// Ping checks every server the store needs answers (each master of a
// Cluster). With one address it also checks, once, that the server is not
// a Cluster node: a standalone client on a Cluster would answer PING while
// most keys are refused with MOVED, a service that looks ready and is not.
func (s *Store) Ping(ctx context.Context) error {
	var err error
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	} else {
		err = s.c.Ping(ctx).Err()
		if err == nil && !s.notCluster.Load() {
			err = s.checkNotCluster(ctx)
		}
	}
	if errors.Is(err, errClusterNode) {
		return err
	}
	if err != nil {
		return s.fail(ctx, "ping", err)
	}
	return nil
}

var errClusterNode = errors.New("redisstore: the configured redis address is a Redis Cluster node; list the cluster's nodes (two or more) in store.redis.addrs")

func (s *Store) checkNotCluster(ctx context.Context) error {
	info, err := s.c.Info(ctx, "cluster").Result()
	if err != nil {
		return err
	}
	if strings.Contains(info, "cluster_enabled:1") {
		return errClusterNode
	}
	s.notCluster.Store(true)
	return nil
}

// fail wraps a Redis error for the caller: anything that means "Redis is
// not there or not serving" wraps bridge.ErrUnavailable (the HTTP layer
// answers 503 and the platform retries); a cancelled context stays a
// cancelled context; other server errors (a script bug) are plain errors.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !transient(rerr.Error()) {
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	return fmt.Errorf("redisstore: %s: %w: %w", op, bridge.ErrUnavailable, err)
}

// transient reports server errors that mean "not serving now".
func transient(msg string) bool {
	for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "OOM", "NOREPLICAS", "MISCONF", "NOAUTH", "WRONGPASS", "NOPERM", "MOVED", "ASK"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// refusal maps a script status to the domain sentinel.
func refusal(status string, invalid error) error {
	switch status {
	case "dup":
		return bridge.ErrDuplicate
	case "notfound":
		return bridge.ErrNotFound
	case "closed":
		return bridge.ErrClosed
	case "stepped":
		return bridge.ErrAlreadySteppedUp
	case "bound":
		return bridge.ErrBoundElsewhere
	case "toomany":
		return bridge.ErrTooManyLinks
	case "invalid":
		return invalid
	}
	return fmt.Errorf("redisstore: unexpected script status %q", status)
}

// run executes a script and returns its reply array.
func (s *Store) run(ctx context.Context, op string, sc *redis.Script, keys []string, args ...any) ([]any, error) {
	return s.reply(ctx, op, sc.Run(ctx, s.c, keys, args...))
}

// reply is the result of a script call that must answer with an array.
func (s *Store) reply(ctx context.Context, op string, cmd *redis.Cmd) ([]any, error) {
	res, err := cmd.Slice()
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("redisstore: %s: empty script reply", op)
	}
	return res, nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || v == "" {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

var states = map[string]bridge.State{
	"a": bridge.StateAnonymous, "l": bridge.StateLinkIssued, "v": bridge.StateLoginVerified,
	"s": bridge.StateSteppedUp, "c": bridge.StateClosed,
}

// decodeSession turns a stored session into a bridge.Session.
func decodeSession(key bridge.Key, raw string) (bridge.Session, error) {
	f, err := decodeFields(raw)
	if err != nil {
		return bridge.Session{}, err
	}
	st, ok := states[f["st"]]
	if !ok {
		return bridge.Session{}, fmt.Errorf("redisstore: corrupt session state %q", f["st"])
	}
	atoi := func(v string) int { n, _ := strconv.Atoi(v); return n }
	sess := bridge.Session{
		Key: key, Platform: f["pl"], Consumer: f["cs"], Channel: f["ch"], State: st,
		StartedAt: fromMS(f["sa"]), UpdatedAt: fromMS(f["ua"]),
		TicketHash: f["th"], LinkExpiresAt: fromMS(f["lx"]), LinksIssued: atoi(f["ln"]),
		CodeHash: f["cd"], CodeExpiresAt: fromMS(f["cx"]), CodeAttempts: atoi(f["ca"]),
		SteppedUpAt: fromMS(f["su"]), AuthConsumer: f["ac"],
	}
	for name, dst := range map[string]**bridge.Identity{"pd": &sess.Pending, "id": &sess.Identity} {
		if v := f[name]; v != "" {
			var id bridge.Identity
			if err := json.Unmarshal([]byte(v), &id); err != nil {
				return bridge.Session{}, fmt.Errorf("redisstore: corrupt session identity: %w", err)
			}
			*dst = &id
		}
	}
	return sess, nil
}

// live reports whether a session updated at u is still live at now.
func (s *Store) live(sess bridge.Session, now time.Time) bool {
	return now.Before(sess.UpdatedAt.Add(s.opts.SessionTTL))
}

// sessionReply decodes the session string at res[i].
func sessionReply(key bridge.Key, res []any, i int) (bridge.Session, error) {
	if len(res) <= i {
		return bridge.Session{}, errors.New("redisstore: script reply without session")
	}
	raw, ok := res[i].(string)
	if !ok {
		return bridge.Session{}, fmt.Errorf("redisstore: script reply session is %T", res[i])
	}
	return decodeSession(key, raw)
}

// entryArgs appends outbox entries (id, JSON) to args. Entries written by a
// step-up get the identity from the session, inside the script.
func entryArgs(args []any, entries []bridge.OutboxEntry, stripIdentity bool) ([]any, error) {
	for _, e := range entries {
		if stripIdentity {
			e.Identity = nil
		}
		b, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("redisstore: encode outbox entry: %w", err)
		}
		args = append(args, e.ID, b)
	}
	return args, nil
}

// enqueued records that this store wrote outbox entries to partition p
// (-1: somewhere) and wakes one of its waiting Claims, which looks at the
// partitions written first.
func (s *Store) enqueued(p int) {
	s.mu.Lock()
	switch {
	case p < 0:
		s.wakes++ // a sweep is needed
	case !slices.Contains(s.dirty, p):
		// claimDirty claims it without a sweep: a shared sweep result
		// still answers for every other partition.
		s.dirty = append(s.dirty, p)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a signal is pending already
	}
}

func ttlMS(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// The observe script's close flag, boxed once.
var flagOpen, flagClose any = "0", "1"

// Observe implements bridge.Store.
func (s *Store) Observe(ctx context.Context, eventID string, obs bridge.Observation) error {
	return s.observe(ctx, "observe", eventID, obs, false)
}

// Close implements bridge.Store.
func (s *Store) Close(ctx context.Context, eventID string, obs bridge.Observation) error {
	return s.observe(ctx, "close", eventID, obs, true)
}

func (s *Store) observe(ctx context.Context, op, eventID string, obs bridge.Observation, closing bool) error {
	closeFlag := flagOpen
	if closing {
		closeFlag = flagClose
	}
	// Keys and arguments in one allocation.
	in := &struct {
		keys [2]string
		args [9]any
	}{args: [9]any{ms(obs.At), s.sessionTTLArg, s.dedupeTTLArg, eventMember(eventID),
		obs.Platform, obs.Consumer, obs.Channel, closeFlag, ms(obs.At) + ttlMS(s.opts.DedupeTTL)}}
	in.keys[0], in.keys[1] = s.k.sessionAndDedupe(obs.Key)
	status, err := s.observes.do(ctx, call{keys: in.keys[:], args: in.args[:]}).Text()
	if err != nil {
		return s.fail(ctx, op, err)
	}
	if status != "ok" {
		return refusal(status, nil)
	}
	return nil
}

// Get implements bridge.Store.
func (s *Store) Get(ctx context.Context, key bridge.Key) (bridge.Session, error) {
	raw, err := s.c.Get(ctx, s.k.session(key)).Result()
	if errors.Is(err, redis.Nil) {
		return bridge.Session{}, bridge.ErrNotFound
	}
	if err != nil {
		return bridge.Session{}, s.fail(ctx, "get", err)
	}
	sess, err := decodeSession(key, raw)
	if err != nil {
		return bridge.Session{}, err
	}
	if !s.live(sess, s.opts.Clock.Now()) {
		return bridge.Session{}, bridge.ErrNotFound
	}
	return sess, nil
}

// IssueTicket implements bridge.Store.
func (s *Store) IssueTicket(ctx context.Context, cmd bridge.IssueTicket) (bridge.Session, error) {
	var obs bridge.Observation
	hasObs := "0"
	if cmd.Obs != nil {
		obs, hasObs = *cmd.Obs, "1"
	}
	p := cmd.Key.Partition()
	args := []any{
		ms(cmd.Now), ttlMS(s.opts.SessionTTL), ttlMS(s.opts.DedupeTTL), eventMember(cmd.EventID),
		hasObs, ms(obs.At), obs.Platform, obs.Consumer, obs.Channel,
		cmd.TicketHash, ms(cmd.ExpiresAt), cmd.MaxLinks, conv(cmd.Key), group, 2 * len(cmd.Outbox),
	}
	args, err := entryArgs(args, cmd.Outbox, false)
	if err != nil {
		return bridge.Session{}, err
	}
	for status, sentinel := range refusalStatuses {
		if e, ok := cmd.RefusalNotes[sentinel]; ok {
			b, err := json.Marshal(e)
			if err != nil {
				return bridge.Session{}, fmt.Errorf("redisstore: encode outbox entry: %w", err)
			}
			args = append(args, status, e.ID, b)
		}
	}
	res, err := s.run(ctx, "issue ticket", issueScript,
		[]string{s.k.session(cmd.Key), s.k.dedupe(cmd.Key), s.k.ticket(p, cmd.TicketHash), s.k.streams[p]}, args...)
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
	return sessionReply(cmd.Key, res, 1)
}

// refusalStatuses are the issue script's refusals that can carry a note.
var refusalStatuses = map[string]error{
	"closed":  bridge.ErrClosed,
	"stepped": bridge.ErrAlreadySteppedUp,
	"toomany": bridge.ErrTooManyLinks,
}

// ticketKey finds the conversation a ticket points to (one GET). The
// ticket is only a pointer: the session holds the hash of the one valid
// link, so a stale pointer (replaced, closed, stepped up) is refused there.
func (s *Store) ticketKey(ctx context.Context, op, brand string, partition uint16, hash string) (bridge.Key, string, error) {
	if partition >= bridge.Partitions {
		return bridge.Key{}, "", bridge.ErrTicketInvalid
	}
	ref, err := s.c.Get(ctx, s.k.ticket(partition, hash)).Result()
	if errors.Is(err, redis.Nil) {
		return bridge.Key{}, "", bridge.ErrTicketInvalid
	}
	if err != nil {
		return bridge.Key{}, "", s.fail(ctx, op, err)
	}
	key, err := parseConv(ref)
	// A ticket of another brand, or one whose partition is not its
	// conversation's, is no ticket for this caller.
	if err != nil || key.Brand != brand || key.Partition() != partition {
		return bridge.Key{}, "", bridge.ErrTicketInvalid
	}
	return key, ref, nil
}

// PeekTicket implements bridge.Store (two reads: the ticket, the session).
func (s *Store) PeekTicket(ctx context.Context, brand string, partition uint16, hash string, now time.Time) (bridge.Session, error) {
	key, _, err := s.ticketKey(ctx, "peek ticket", brand, partition, hash)
	if err != nil {
		return bridge.Session{}, err
	}
	raw, err := s.c.Get(ctx, s.k.session(key)).Result()
	if errors.Is(err, redis.Nil) {
		return bridge.Session{}, bridge.ErrTicketInvalid
	}
	if err != nil {
		return bridge.Session{}, s.fail(ctx, "peek ticket", err)
	}
	sess, err := decodeSession(key, raw)
	if err != nil {
		return bridge.Session{}, err
	}
	if !s.live(sess, now) || sess.State != bridge.StateLinkIssued || sess.TicketHash != hash || !now.Before(sess.LinkExpiresAt) {
		return bridge.Session{}, bridge.ErrTicketInvalid
	}
	return sess, nil
}

// BeginLogin implements bridge.Store: one read to find the conversation,
// then one script that checks the ticket again and consumes it. The login
// transaction is stored in the ticket's partition: mint its token with
// bridge.NewTokenIn(cmd.Partition), as the service does.
func (s *Store) BeginLogin(ctx context.Context, cmd bridge.BeginLogin) (bridge.Session, error) {
	key, ref, err := s.ticketKey(ctx, "begin login", cmd.Brand, cmd.Partition, cmd.TicketHash)
	if err != nil {
		return bridge.Session{}, err
	}
	txn := cmd.Txn
	txn.Key = key
	body, err := json.Marshal(txn)
	if err != nil {
		return bridge.Session{}, fmt.Errorf("redisstore: encode login transaction: %w", err)
	}
	res, err := s.run(ctx, "begin login", beginScript,
		[]string{s.k.ticket(cmd.Partition, cmd.TicketHash), s.k.session(key), s.k.txn(cmd.Partition, cmd.TxnHash)},
		ms(cmd.Now), ttlMS(s.opts.SessionTTL), cmd.TicketHash, ref, cmd.Brand, body, ms(txn.ExpiresAt))
	if err != nil {
		return bridge.Session{}, err
	}
	if res[0] != "ok" {
		return bridge.Session{}, refusal(fmt.Sprint(res[0]), bridge.ErrTicketInvalid)
	}
	return sessionReply(key, res, 1)
}

// TakeLogin implements bridge.Store.
func (s *Store) TakeLogin(ctx context.Context, brand string, partition uint16, hash string, now time.Time) (bridge.LoginTxn, error) {
	if partition >= bridge.Partitions {
		return bridge.LoginTxn{}, bridge.ErrLoginInvalid
	}
	res, err := s.run(ctx, "take login", takeScript, []string{s.k.txn(partition, hash)}, brand, ms(now))
	if err != nil {
		return bridge.LoginTxn{}, err
	}
	if res[0] != "ok" {
		return bridge.LoginTxn{}, refusal(fmt.Sprint(res[0]), bridge.ErrLoginInvalid)
	}
	var txn bridge.LoginTxn
	if len(res) < 2 {
		return bridge.LoginTxn{}, errors.New("redisstore: take login: reply without transaction")
	}
	if err := json.Unmarshal([]byte(fmt.Sprint(res[1])), &txn); err != nil {
		return bridge.LoginTxn{}, fmt.Errorf("redisstore: decode login transaction: %w", err)
	}
	return txn, nil
}

// VerifyLogin implements bridge.Store.
func (s *Store) VerifyLogin(ctx context.Context, cmd bridge.VerifyLogin) (bridge.Session, error) {
	id, err := json.Marshal(cmd.Identity)
	if err != nil {
		return bridge.Session{}, fmt.Errorf("redisstore: encode identity: %w", err)
	}
	p := cmd.Key.Partition()
	args := []any{ms(cmd.Now), ttlMS(s.opts.SessionTTL), id, cmd.Identity.Issuer, cmd.Identity.Subject, cmd.CodeHash, ms(cmd.CodeExpiresAt), group}
	stepsUp := cmd.CodeHash == "" && len(cmd.Outbox) > 0
	if cmd.CodeHash == "" {
		if args, err = entryArgs(args, cmd.Outbox, true); err != nil {
			return bridge.Session{}, err
		}
	}
	res, err := s.run(ctx, "verify login", verifyScript, []string{s.k.session(cmd.Key), s.k.streams[p]}, args...)
	if err != nil {
		return bridge.Session{}, err
	}
	if res[0] != "ok" {
		return bridge.Session{}, refusal(fmt.Sprint(res[0]), nil)
	}
	if stepsUp {
		s.enqueued(int(p))
	}
	return sessionReply(cmd.Key, res, 1)
}

// ConfirmCode implements bridge.Store.
func (s *Store) ConfirmCode(ctx context.Context, cmd bridge.ConfirmCode) (bridge.CodeResult, bridge.Session, error) {
	key := cmd.Obs.Key
	p := key.Partition()
	args := []any{
		ms(cmd.Obs.At), ttlMS(s.opts.SessionTTL), ttlMS(s.opts.DedupeTTL), eventMember(cmd.EventID),
		cmd.Obs.Platform, cmd.Obs.Consumer, cmd.Obs.Channel, cmd.CodeHash, cmd.MaxAttempts, group, 2 * len(cmd.Outbox),
	}
	args, err := entryArgs(args, cmd.Outbox, true)
	if err != nil {
		return "", bridge.Session{}, err
	}
	for _, result := range slices.Sorted(maps.Keys(cmd.Feedback)) {
		e := cmd.Feedback[result]
		b, err := json.Marshal(e)
		if err != nil {
			return "", bridge.Session{}, fmt.Errorf("redisstore: encode outbox entry: %w", err)
		}
		args = append(args, string(result), e.ID, b)
	}
	res, err := s.run(ctx, "confirm code", confirmScript,
		[]string{s.k.session(key), s.k.dedupe(key), s.k.streams[p]}, args...)
	if err != nil {
		return "", bridge.Session{}, err
	}
	if res[0] != "ok" {
		return "", bridge.Session{}, refusal(fmt.Sprint(res[0]), nil)
	}
	if len(res) < 3 {
		return "", bridge.Session{}, errors.New("redisstore: confirm code: short reply")
	}
	result := bridge.CodeResult(fmt.Sprint(res[1]))
	sess, err := sessionReply(key, res, 2)
	if err != nil {
		return "", bridge.Session{}, err
	}
	if _, fb := cmd.Feedback[result]; fb || (result == bridge.CodeMatched && len(cmd.Outbox) > 0) {
		s.enqueued(int(p))
	}
	return result, sess, nil
}
