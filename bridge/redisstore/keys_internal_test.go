package redisstore

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// The observe call's keys, built in one allocation, are the session and
// dedupe keys every other call uses.
func TestSessionAndDedupeKeys(t *testing.T) {
	k := newKeys("stepup")
	for _, key := range []bridge.Key{
		{Brand: "acme", Conversation: "c-42"},
		{Brand: "a", Conversation: ""},
		{Brand: "brand:with:colons", Conversation: "conv:e:s:"},
		{Brand: "ünï", Conversation: "💬 long conversation id " + string(make([]byte, 300))},
	} {
		session, dedupe := k.sessionAndDedupe(key)
		assert.Equal(t, k.session(key), session, "%+v", key)
		assert.Equal(t, k.dedupe(key), dedupe, "%+v", key)
	}
}
