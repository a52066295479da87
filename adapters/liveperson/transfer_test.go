package liveperson_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson/lptest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// cqmWithAgent is a conversation notification listing an ASSIGNED_AGENT
// (as cqm.ExConversationChangeNotification.agent-assigned.json).
func cqmWithAgent(conv, consumer, agent string, ts int64) string {
	return strings.Replace(cqm(conv, consumer, "OPEN", ts), `"participants":[`,
		`"participants":[{"id":"`+agent+`","role":"ASSIGNED_AGENT"},`, 1)
}

// TestTransferUnassigns: a skill transfer removes the ASSIGNED_AGENT in the
// same request when one is assigned (liveperson.md §3.5), as the
// conversation notifications tell, whatever order they arrive in.
func TestTransferUnassigns(t *testing.T) {
	const conv, consumer, agent = "7e57c0de-0000-4000-8000-000000000042", "anon-t", "29c3019d-fe0b-5200-afe8-737abfeae4b4"
	tests := []struct {
		name          string
		notifications []string // in arrival order
		assigned      string   // the agent LivePerson has assigned
		unassigned    string
	}{
		{name: "agent assigned", notifications: []string{cqm(conv, consumer, "OPEN", 10), cqmWithAgent(conv, consumer, agent, 20)}, assigned: agent, unassigned: agent},
		{name: "no agent", notifications: []string{cqm(conv, consumer, "OPEN", 10)}},
		{name: "older notification arrives late", notifications: []string{cqmWithAgent(conv, consumer, agent, 20), cqm(conv, consumer, "OPEN", 10)}, assigned: agent, unassigned: agent},
		{name: "agent left", notifications: []string{cqmWithAgent(conv, consumer, agent, 20), cqm(conv, consumer, "OPEN", 30)}},
		{name: "unknown, agent assigned", assigned: agent, unassigned: agent},
		{name: "unknown, no agent"},
		{name: "closed: forgotten, unknown again", notifications: []string{cqmWithAgent(conv, consumer, agent, 20), cqm(conv, consumer, "CLOSE", 30)}, assigned: agent, unassigned: agent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := lptest.NewTest(t, lptest.Config{})
			a := newAdapter(t, f, platformConfig(f), newClock())
			f.OpenConversation(conv)
			if tc.assigned != "" {
				f.AssignAgent(conv, tc.assigned)
			}
			ctx := context.Background()
			for _, n := range tc.notifications {
				_, err := a.ParseWebhook(ctx, webhook(f, n))
				require.NoError(t, err)
			}
			require.NoError(t, a.Deliver(ctx, entry(bridge.EffectRouteSkill, conv, "4242")))
			assert.Equal(t, []lptest.Transfer{{Conversation: conv, Skill: "4242", Unassigned: tc.unassigned}}, f.Transfers())
			assert.Empty(t, f.AssignedAgent(conv), "nobody keeps the conversation")
			assert.Empty(t, f.Violations(), "every transfer as documented")
		})
	}
}

// TestTransferStaleAssignment: the bridge believes no agent is assigned
// but one is (a notification still on its way): the fake flags the
// transfer that leaves the agent in place, so this test pins what the
// bridge does with what it knows.
func TestTransferStaleAssignment(t *testing.T) {
	const conv, agent = "7e57c0de-0000-4000-8000-000000000043", "agent-late"
	f := lptest.NewTest(t, lptest.Config{})
	a := newAdapter(t, f, platformConfig(f), newClock())
	f.OpenConversation(conv)
	_, err := a.ParseWebhook(context.Background(), webhook(f, cqm(conv, "anon", "OPEN", 10)))
	require.NoError(t, err)
	f.AssignAgent(conv, agent)
	require.NoError(t, a.Deliver(context.Background(), entry(bridge.EffectRouteSkill, conv, "4242")))
	assert.Equal(t, []string{"skill transfer without removing the ASSIGNED_AGENT " + agent}, f.Violations())
}
