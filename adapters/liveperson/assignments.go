package liveperson

import (
	"sync"
	"time"
)

// Assignment is what the bridge knows of a conversation's ASSIGNED_AGENT
// when it transfers the skill: LivePerson's transfer removes the assigned
// agent in the same request when there is one (liveperson.md §3.5).
type Assignment int

const (
	// AssignmentUnknown: no conversation notification seen by this
	// replica (another replica got it, or the process restarted).
	AssignmentUnknown Assignment = iota
	AssignmentNone
	AssignmentAgent
)

// maxAssignments bounds the table; a conversation needs one entry from its
// notification to its transfer, seconds apart.
const (
	maxAssignments = 100_000
	assignmentTTL  = 24 * time.Hour
)

// assignments remembers, per conversation, whether the latest conversation
// notification (by metaDataLastUpdateTs: LivePerson does not keep their
// order) listed an ASSIGNED_AGENT. It is per process on purpose: the
// domain store has no place for platform participants, and an unknown
// assignment is handled at the transfer (see AgentClient.TransferSkill).
type assignments struct {
	mu sync.Mutex
	m  map[string]assignment
}

type assignment struct {
	agent bool
	ts    int64
	seen  time.Time
}

func newAssignments() *assignments { return &assignments{m: map[string]assignment{}} }

func (a *assignments) observe(conv string, agent bool, ts int64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.m[conv]; ok && cur.ts > ts {
		return // an older notification arriving late
	}
	if len(a.m) >= maxAssignments {
		a.evict(now)
	}
	a.m[conv] = assignment{agent: agent, ts: ts, seen: now}
}

// evict drops expired entries, or an arbitrary tenth when none expired.
func (a *assignments) evict(now time.Time) {
	for k, v := range a.m {
		if now.Sub(v.seen) > assignmentTTL {
			delete(a.m, k)
		}
	}
	for k := range a.m {
		if len(a.m) < maxAssignments*9/10 {
			break
		}
		delete(a.m, k)
	}
}

func (a *assignments) get(conv string) Assignment {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.m[conv]
	switch {
	case !ok:
		return AssignmentUnknown
	case v.agent:
		return AssignmentAgent
	}
	return AssignmentNone
}

func (a *assignments) forget(conv string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.m, conv)
}
