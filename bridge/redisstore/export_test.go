package redisstore

import (
	"github.com/redis/go-redis/v9"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Test-only access to the key layout and the scripts.

// SessionKey and DedupeKey name a conversation's keys.
func (s *Store) SessionKey(k bridge.Key) string { return s.k.session(k) }
func (s *Store) DedupeKey(k bridge.Key) string  { return s.k.dedupe(k) }

// TicketKey and TxnKey name a login link's and a login transaction's keys.
func (s *Store) TicketKey(p uint16, hash string) string { return s.k.ticket(p, hash) }
func (s *Store) TxnKey(p uint16, hash string) string    { return s.k.txn(p, hash) }

// StreamKey, DelayedKey and DeadKey name a partition's outbox keys.
func (s *Store) StreamKey(p uint16) string  { return s.k.streams[p] }
func (s *Store) DelayedKey(p uint16) string { return s.k.delayed[p] }
func (s *Store) DeadKey(p uint16) string    { return s.k.dead[p] }

// Group is the outbox consumer group.
const Group = group

// Scripts lists every Lua script the store runs.
func Scripts() []*redis.Script { return scripts }
