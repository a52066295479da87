package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
)

// endpoint is the brand's side of the standard adapter: it receives the
// bridge's outbox calls, checks each signature (standard.Verify with the
// endpoint secret) and the envelope, and hands the calls of watched
// conversations to the step-up flows.
type endpoint struct {
	secret [][]byte
	srv    *http.Server
	url    string

	mu      sync.Mutex
	watch   map[string]chan delivered
	seen    map[string]bool // webhook-ids: retries are counted, not re-handed
	byType  map[string]int64
	dups    atomic.Int64
	refused atomic.Int64
}

type delivered struct {
	typ  string
	text string
	at   time.Time
}

func startEndpoint(secret string) (*endpoint, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &endpoint{secret: [][]byte{mustKey(secret)}, watch: map[string]chan delivered{}, seen: map[string]bool{}, byType: map[string]int64{}}
	e.url = "http://" + ln.Addr().String() + "/events"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events", e.serve)
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go e.srv.Serve(ln)
	return e, nil
}

func (e *endpoint) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = e.srv.Shutdown(ctx)
}

func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	id, err := standard.Verify(e.secret, r.Header, body, time.Now(), 0)
	if err != nil {
		e.refused.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var env struct {
		Type string `json:"type"`
		Data struct {
			ConversationID string `json:"conversation_id"`
			Text           string `json:"text"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Type == "" || env.Data.ConversationID == "" {
		e.refused.Add(1)
		http.Error(w, "bad envelope", http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	dup := e.seen[id]
	e.seen[id] = true
	if !dup {
		e.byType[env.Type]++
	}
	ch := e.watch[env.Data.ConversationID]
	e.mu.Unlock()
	if dup {
		e.dups.Add(1)
	} else if ch != nil {
		select {
		case ch <- delivered{typ: env.Type, text: env.Data.Text, at: time.Now()}:
		default:
		}
	}
	w.WriteHeader(http.StatusOK)
}

// watchConv returns the calls for conv from now on.
func (e *endpoint) watchConv(conv string) chan delivered {
	ch := make(chan delivered, 16)
	e.mu.Lock()
	e.watch[conv] = ch
	e.mu.Unlock()
	return ch
}

func (e *endpoint) unwatch(conv string) {
	e.mu.Lock()
	delete(e.watch, conv)
	e.mu.Unlock()
}

func (e *endpoint) counts() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int64{}
	for k, v := range e.byType {
		out[k] = v
	}
	if n := e.dups.Load(); n > 0 {
		out["duplicate deliveries"] = n
	}
	if n := e.refused.Load(); n > 0 {
		out["refused (bad signature or envelope)"] = n
	}
	return out
}

var errTimeout = errors.New("timed out")

// await waits for a call of type typ on ch.
func await(ctx context.Context, ch chan delivered, typ string, d time.Duration) (delivered, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return delivered{}, ctx.Err()
		case <-t.C:
			return delivered{}, errTimeout
		case c := <-ch:
			if c.typ == typ {
				return c, nil
			}
		}
	}
}
