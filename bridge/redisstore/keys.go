package redisstore

import (
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Key layout (prefix "stepup", partition 17, brand "acme", conversation
// "c-42"):
//
//	stepup:{p17}:s:4:acme:c-42       session (string, SessionTTL)
//	stepup:{p17}:e:4:acme:c-42       event-id dedupe set (zset, DedupeTTL)
//	stepup:{p17}:tk:<ticket hash>    login link → conversation (string, until the link expires)
//	stepup:{p17}:tx:<txn hash>       OIDC transaction (hash, until it expires)
//	stepup:{p17}:outbox              outbox stream, consumer group "stepup"
//	stepup:{p17}:outbox:delayed      retries waiting for their time (zset)
//	stepup:{p17}:outbox:dead         dead letters (stream, capped, retention)
//
// The hash tag {pN} is the conversation's bridge.Key.Partition(), so every
// key one command touches is in one Cluster slot. The conversation is
// encoded as <len(brand)>:<brand>:<conversation>: the brand's length makes the
// split unambiguous whatever the ids contain.

// group is the consumer group of every outbox stream.
const group = "stepup"

type keys struct {
	prefix  string
	tags    [bridge.Partitions]string // "<prefix>:{pN}:"
	streams [bridge.Partitions]string
	delayed [bridge.Partitions]string
	dead    [bridge.Partitions]string
}

func newKeys(prefix string) *keys {
	k := &keys{prefix: prefix}
	for p := range bridge.Partitions {
		k.tags[p] = prefix + ":{p" + strconv.Itoa(p) + "}:"
		k.streams[p] = k.tags[p] + "outbox"
		k.delayed[p] = k.tags[p] + "outbox:delayed"
		k.dead[p] = k.tags[p] + "outbox:dead"
	}
	return k
}

// conv encodes a conversation key (also the value of a ticket key).
func conv(key bridge.Key) string {
	return strconv.Itoa(len(key.Brand)) + ":" + key.Brand + ":" + key.Conversation
}

var errBadConv = errors.New("malformed conversation reference")

// parseConv is conv's inverse.
func parseConv(s string) (bridge.Key, error) {
	n, rest, ok := strings.Cut(s, ":")
	if !ok {
		return bridge.Key{}, errBadConv
	}
	l, err := strconv.Atoi(n)
	// l >= len(rest), not len(rest) < l+1: a huge length would overflow.
	// Only the canonical length ("4", not "04" or "+4") is accepted, so
	// one conversation has one encoding.
	if err != nil || l < 0 || strconv.Itoa(l) != n || l >= len(rest) || rest[l] != ':' {
		return bridge.Key{}, errBadConv
	}
	return bridge.Key{Brand: rest[:l], Conversation: rest[l+1:]}, nil
}

func (k *keys) session(key bridge.Key) string {
	return k.tags[key.Partition()] + "s:" + conv(key)
}

func (k *keys) dedupe(key bridge.Key) string {
	return k.tags[key.Partition()] + "e:" + conv(key)
}

// sessionAndDedupe returns a conversation's session and dedupe keys, built
// in one allocation (the observe call, on nearly every event, needs both);
// "s:" and "e:" being the same length, each is half of it.
func (k *keys) sessionAndDedupe(key bridge.Key) (session, dedupe string) {
	tag, c := k.tags[key.Partition()], conv(key)
	both := tag + "s:" + c + tag + "e:" + c
	return both[:len(both)/2], both[len(both)/2:]
}

func (k *keys) ticket(p uint16, hash string) string { return k.tags[p] + "tk:" + hash }

func (k *keys) txn(p uint16, hash string) string { return k.tags[p] + "tx:" + hash }

// eventMember is what the dedupe set holds for an event id: 12 bytes (96
// bits) of its SHA-256, whatever the id's length; "" stays "" (no dedupe).
func eventMember(id string) string {
	if id == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(id))
	return string(sum[:12])
}
