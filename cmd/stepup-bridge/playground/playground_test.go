package playground_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
	"github.com/stepup-bridge/stepup-bridge/cmd/stepup-bridge/playground"
)

var (
	webhookSecret  = "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	endpointSecret = "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
)

// fakeBridge checks the playground's webhooks (signature, path, JSON) and
// answers the status API with the state the test sets.
type fakeBridge struct {
	t     *testing.T
	mu    sync.Mutex
	types []string
	state string
}

func (f *fakeBridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/webhooks/demo/standard":
		body, _ := io.ReadAll(r.Body)
		key, _ := standard.ParseSecret(webhookSecret)
		if _, err := standard.Verify([][]byte{key}, r.Header, body, time.Now(), time.Minute); err != nil {
			f.t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var env struct {
			Type string `json:"type"`
			Data struct {
				ConversationID string `json:"conversation_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Data.ConversationID == "" {
			f.t.Errorf("webhook body %s", body)
		}
		f.types = append(f.types, env.Type)
		w.Write([]byte(`{"status":"ok","events":1}`))
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/brands/demo/conversations/"):
		if r.Header.Get("Authorization") != "Bearer key" {
			f.t.Errorf("status API without the API key")
		}
		json.NewEncoder(w).Encode(map[string]any{"state": f.state, "links_issued": 0, "updated_at": time.Now()})
	default:
		f.t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}
}

func setup(t *testing.T) (*httptest.Server, *fakeBridge, string) {
	fb := &fakeBridge{t: t, state: "anonymous"}
	bridge := httptest.NewServer(fb)
	t.Cleanup(bridge.Close)
	p, err := playground.New(playground.Options{BridgeURL: bridge.URL, Brand: "demo", Platform: "standard",
		WebhookSecret: webhookSecret, EndpointSecret: endpointSecret, APIKey: "key"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/conversations", nil)
	req.Header.Set("X-Playground", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var snap playground.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	if len(fb.types) != 1 || fb.types[0] != "conversation.started" {
		t.Fatalf("webhooks %q", fb.types)
	}
	return srv, fb, snap.Conversation.ID
}

// call sends one bridge → platform call signed with secret.
func call(t *testing.T, srv *httptest.Server, secret, id, body string) int {
	t.Helper()
	key, _ := standard.ParseSecret(secret)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+playground.EndpointPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	standard.SignHeader(req.Header, key, id, time.Now(), []byte(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func snapshot(t *testing.T, srv *httptest.Server, conv string) playground.Snapshot {
	t.Helper()
	resp, err := http.Get(srv.URL + "/api/conversations/" + conv)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s playground.Snapshot
	json.NewDecoder(resp.Body).Decode(&s)
	return s
}

func TestPlatformCallsAreCheckedAndIdempotent(t *testing.T) {
	srv, _, conv := setup(t)
	post := `{"type":"stepup.message.post","timestamp":"2026-01-01T00:00:00Z","data":{"conversation_id":"` + conv + `","consumer_id":"c","text":"hello","audience":"consumer"}}`
	identity := `{"provider":"IdP","issuer":"https://idp","subject":"u1","name":"Alex","email":"","email_verified":false,"amr":[],"acr":"","auth_time":null,"verified_at":"2026-01-01T00:00:00Z","claims":{"customer_id":"C-1"}}`
	tests := []struct {
		name, secret, id, body string
		want                   int
	}{
		{"message", endpointSecret, "e1", post, http.StatusNoContent},
		{"same webhook-id again", endpointSecret, "e1", post, http.StatusNoContent},
		{"wrong secret", webhookSecret, "e2", post, http.StatusUnauthorized},
		{"extra key", endpointSecret, "e3", strings.Replace(post, `"audience"`, `"color":"red","audience"`, 1), http.StatusBadRequest},
		{"wrong audience", endpointSecret, "e4", strings.Replace(post, `"audience":"consumer"`, `"audience":"agents"`, 1), http.StatusBadRequest},
		{"unknown conversation", endpointSecret, "e5", strings.Replace(post, conv, "conv_nope", 1), http.StatusNotFound},
		{"unknown type", endpointSecret, "e6", strings.Replace(post, "stepup.message.post", "stepup.other", 1), http.StatusBadRequest},
		{"attach without claims", endpointSecret, "e7", `{"type":"stepup.identity.attach","timestamp":"2026-01-01T00:00:00Z","data":{"conversation_id":"` + conv + `","identity":` + strings.Replace(identity, `,"claims":{"customer_id":"C-1"}`, "", 1) + `}}`, http.StatusBadRequest},
		{"attach", endpointSecret, "e8", `{"type":"stepup.identity.attach","timestamp":"2026-01-01T00:00:00Z","data":{"conversation_id":"` + conv + `","identity":` + identity + `}}`, http.StatusNoContent},
		{"notify", endpointSecret, "e9", `{"type":"stepup.agents.notify","timestamp":"2026-01-01T00:00:00Z","data":{"conversation_id":"` + conv + `","text":"Stepped up: Alex","audience":"agents","identity":` + identity + `}}`, http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := call(t, srv, tt.secret, tt.id, tt.body); got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
		})
	}
	s := snapshot(t, srv, conv)
	var hellos, notes int
	for _, m := range s.Conversation.Messages {
		switch {
		case m.Text == "hello" && m.Audience == "all":
			hellos++
		case m.Kind == "note" && m.Audience == "agents":
			notes++
		}
	}
	if hellos != 1 || notes != 1 {
		t.Errorf("%d hellos (the duplicate must not show twice), %d notes", hellos, notes)
	}
	if !s.Conversation.SteppedUp || s.Conversation.Identity == nil || s.Conversation.Identity.Claims["customer_id"] != "C-1" {
		t.Errorf("conversation %+v", s.Conversation)
	}
}

func TestMessagesBecomeSignedWebhooks(t *testing.T) {
	srv, fb, conv := setup(t)
	for _, m := range []map[string]string{{"from": "consumer", "text": "hi"}, {"from": "agent", "text": "/verify"}} {
		b, _ := json.Marshal(m)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/conversations/"+conv+"/messages", bytes.NewReader(b))
		req.Header.Set("X-Playground", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("message: %d", resp.StatusCode)
		}
	}
	fb.mu.Lock()
	types := strings.Join(fb.types, ",")
	fb.mu.Unlock()
	if types != "conversation.started,message.created,message.created" {
		t.Errorf("webhooks %s", types)
	}
	s := snapshot(t, srv, conv)
	if len(s.Conversation.Messages) != 2 || s.Conversation.Messages[1].Kind != "command" || s.Conversation.Messages[1].Audience != "agents" {
		t.Errorf("messages %+v", s.Conversation.Messages)
	}
}

func TestRefusesForeignHostsAndCrossSiteRequests(t *testing.T) {
	srv, _, _ := setup(t)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d", resp.StatusCode)
	}
	resp, err = http.Post(srv.URL+"/api/conversations", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("no X-Playground: %d", resp.StatusCode)
	}
}
