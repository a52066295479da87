package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry"
	"github.com/stepup-bridge/stepup-bridge/cmd/stepup-bridge/playground"
)

// startTestDemo runs the demo stack on free loopback ports for one test.
func startTestDemo(t *testing.T, store string) *demoStack {
	t.Helper()
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	o := demoOptions{Listen: "127.0.0.1:0", Store: store, RedisAddr: "127.0.0.1:6379", Log: telemetry.NewLogger(logw, "text", "info"), PollEvery: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := startDemo(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("demo close: %v", err)
		}
	})
	return d
}

// demoClient is a browser stand-in: a cookie jar (which, like browsers,
// sends Secure cookies to loopback over http) and redirects followed.
type demoClient struct {
	t    *testing.T
	d    *demoStack
	http *http.Client
}

func newDemoClient(t *testing.T, d *demoStack) *demoClient {
	jar, _ := cookiejar.New(nil)
	return &demoClient{t: t, d: d, http: &http.Client{Jar: jar, Timeout: 15 * time.Second}}
}

func (c *demoClient) api(method, path string, body any) playground.Snapshot {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.d.URL+strings.TrimPrefix(path, "/"), r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Playground", "1")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var snap playground.Snapshot
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
			c.t.Fatal(err)
		}
	}
	return snap
}

func (c *demoClient) say(conv, from, text string) {
	c.t.Helper()
	c.api("POST", "/api/conversations/"+conv+"/messages", map[string]string{"from": from, "text": text})
}

// waitFor polls the conversation until ok holds.
func (c *demoClient) waitFor(conv, what string, ok func(playground.Snapshot) bool) playground.Snapshot {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := c.api("GET", "/api/conversations/"+conv, nil)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s; last snapshot: %+v", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var demoLinkRe = regexp.MustCompile(`https?://\S+/login/demo/\S+`)

// requestLink has the agent ask to verify and returns the link the consumer got.
func (c *demoClient) requestLink(conv string, links int) string {
	c.t.Helper()
	c.api("POST", "/api/conversations/"+conv+"/verify", nil)
	s := c.waitFor(conv, "the login link in the chat", func(s playground.Snapshot) bool {
		n := 0
		for _, m := range s.Conversation.Messages {
			if m.From == "bridge" && demoLinkRe.MatchString(m.Text) {
				n++
			}
		}
		return n == links
	})
	var link string
	for _, m := range s.Conversation.Messages {
		if m.From == "bridge" && m.Audience == "all" && demoLinkRe.MatchString(m.Text) {
			link = demoLinkRe.FindString(m.Text)
		}
	}
	return link
}

func (c *demoClient) get(u string) (int, string) {
	c.t.Helper()
	resp, err := c.http.Get(u)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *demoClient) postForm(u string, form url.Values) (int, string) {
	c.t.Helper()
	resp, err := c.http.PostForm(u, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var (
	demoActionRe  = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	demoRequestRe = regexp.MustCompile(`name="request" value="([^"]+)"`)
	demoCodeRe    = regexp.MustCompile(`aria-label="Your code">([0-9 ]+)<`)
)

// login opens the link, continues to the IdP and picks user ("" cancels);
// it returns the bridge's final page.
func (c *demoClient) login(link, user string) (int, string) {
	c.t.Helper()
	status, page := c.get(link)
	if status != http.StatusOK || !strings.Contains(page, "Verify your identity") {
		c.t.Fatalf("login page: %d %s", status, page)
	}
	m := demoActionRe.FindStringSubmatch(page)
	if m == nil {
		c.t.Fatalf("no form on the login page: %s", page)
	}
	status, page = c.postForm(c.d.BridgeURL+m[1], nil)
	if status != http.StatusOK || !strings.Contains(page, "DEVELOPMENT ONLY") || !strings.Contains(page, "Alex Morgan") || !strings.Contains(page, "C-1001") {
		c.t.Fatalf("IdP login page: %d %s", status, page)
	}
	form := url.Values{"request": {demoRequestRe.FindStringSubmatch(page)[1]}}
	if user == "" {
		form.Set("cancel", "1")
	} else {
		form.Set("user", user)
	}
	return c.postForm(c.d.Issuer+"/authorize", form)
}

func demoSteps(s playground.Snapshot) []string {
	var out []string
	for _, e := range s.Timeline {
		out = append(out, e.Step)
	}
	return out
}

func TestDemoStepUpOverHTTP(t *testing.T) {
	d := startTestDemo(t, "memory")
	c := newDemoClient(t, d)

	// The page is served, with its assets, from the binary.
	if status, page := c.get(d.URL); status != http.StatusOK || !strings.Contains(page, "Agent · console") {
		t.Fatalf("page: %d", status)
	}
	if status, _ := c.get(d.URL + "assets/app.js"); status != http.StatusOK {
		t.Fatalf("app.js: %d", status)
	}

	s := c.api("POST", "/api/conversations", nil)
	conv := s.Conversation.ID
	c.say(conv, "consumer", "Hi, I need to change the address on my order.")
	c.say(conv, "agent", "Happy to help. I need to verify you first.")
	link := c.requestLink(conv, 1)
	if !strings.HasPrefix(link, d.BridgeURL+"/login/demo/") {
		t.Fatalf("link %q is not the bridge's", link)
	}

	status, page := c.login(link, "u-1001")
	m := demoCodeRe.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		t.Fatalf("code page: %d %s", status, page)
	}
	c.waitFor(conv, "login verified", func(s playground.Snapshot) bool { return s.Conversation.State == "login_verified" })
	c.say(conv, "consumer", m[1]) // typed as shown, with its space

	s = c.waitFor(conv, "the step-up on the agent side", func(s playground.Snapshot) bool {
		return s.Conversation.SteppedUp && s.Conversation.Identity != nil && s.Conversation.Skill != "" &&
			slices.ContainsFunc(s.Conversation.Messages, func(m playground.Message) bool { return strings.Contains(m.Text, "you are now verified") })
	})
	id := s.Conversation.Identity
	if id.Name != "Alex Morgan" || id.Claims["customer_id"] != "C-1001" || id.Issuer != d.Issuer || strings.Join(id.AMR, ",") != "pwd,otp" || id.AuthTime == nil {
		t.Errorf("identity %+v", id)
	}
	if !strings.Contains(s.Conversation.Notice, "Alex Morgan") || !strings.Contains(s.Conversation.Notice, "C-1001") {
		t.Errorf("notice %q", s.Conversation.Notice)
	}
	if s.Conversation.State != "stepped_up" {
		t.Errorf("bridge state %q", s.Conversation.State)
	}
	// Every message from the start is still there, in order.
	var texts []string
	for _, m := range s.Conversation.Messages {
		texts = append(texts, m.Text)
	}
	if len(texts) < 6 || texts[0] != "Hi, I need to change the address on my order." || texts[2] != "/verify" {
		t.Errorf("messages %q", texts)
	}
	got := demoSteps(s)
	for _, want := range []string{"webhook received", "link issued", "identity provider", "login verified", "code matched", "platform call delivered"} {
		if !slices.Contains(got, want) {
			t.Errorf("timeline lacks %q: %q", want, got)
		}
	}
	for _, e := range s.Timeline {
		if e.Level == "error" {
			t.Errorf("timeline error: %+v", e)
		}
	}

	// The link was single use.
	if status, page := c.get(link); status != http.StatusGone || !strings.Contains(page, "expired") {
		t.Errorf("used link: %d", status)
	}
	// Asking again after the step-up: the bridge refuses quietly, the
	// timeline says so.
	c.api("POST", "/api/conversations/"+conv+"/verify", nil)
	s = c.waitFor(conv, "the refusal on the timeline", func(s playground.Snapshot) bool { return slices.Contains(demoSteps(s), "link refused") })
	if s.Conversation.LinksIssued != 1 {
		t.Errorf("%d links issued, want 1", s.Conversation.LinksIssued)
	}
}

func TestDemoWrongCodeThreeTimes(t *testing.T) {
	d := startTestDemo(t, "memory")
	c := newDemoClient(t, d)
	conv := c.api("POST", "/api/conversations", nil).Conversation.ID
	_, page := c.login(c.requestLink(conv, 1), "u-1002")
	code := strings.ReplaceAll(demoCodeRe.FindStringSubmatch(page)[1], " ", "")
	c.waitFor(conv, "login verified", func(s playground.Snapshot) bool { return s.Conversation.State == "login_verified" })
	wrong := fmt.Sprintf("%06d", (demoAtoi(code)+1)%1000000)
	for range 3 {
		c.say(conv, "consumer", wrong)
	}
	s := c.waitFor(conv, "the login discarded", func(s playground.Snapshot) bool { return s.Conversation.State == "anonymous" })
	refusals := 0
	for _, e := range s.Timeline {
		if e.Step == "code refused" {
			refusals++
		}
	}
	if refusals != 3 {
		t.Errorf("%d code refusals on the timeline, want 3: %q", refusals, demoSteps(s))
	}
	// The right code is now just a message.
	c.say(conv, "consumer", code)
	time.Sleep(300 * time.Millisecond)
	if s := c.api("GET", "/api/conversations/"+conv, nil); s.Conversation.SteppedUp || s.Conversation.State != "anonymous" {
		t.Errorf("stepped up after the lock: %+v", s.Conversation)
	}
}

func TestDemoIdPCancel(t *testing.T) {
	d := startTestDemo(t, "memory")
	c := newDemoClient(t, d)
	conv := c.api("POST", "/api/conversations", nil).Conversation.ID
	status, page := c.login(c.requestLink(conv, 1), "")
	if status != http.StatusForbidden || !strings.Contains(page, "Sign-in cancelled") {
		t.Fatalf("cancel: %d %s", status, page)
	}
	s := c.waitFor(conv, "the cancel on the timeline", func(s playground.Snapshot) bool {
		return slices.ContainsFunc(s.Timeline, func(e playground.Entry) bool { return strings.Contains(e.Text, "access_denied") })
	})
	if s.Conversation.SteppedUp {
		t.Error("stepped up after a cancelled sign-in")
	}
}

func TestDemoExpiredLink(t *testing.T) {
	d := startTestDemo(t, "memory")
	c := newDemoClient(t, d)
	conv := c.api("POST", "/api/conversations", nil).Conversation.ID
	link := c.requestLink(conv, 1)
	c.api("POST", "/api/clock/skip", map[string]int{"minutes": 11})
	c.waitFor(conv, "the expiry on the timeline", func(s playground.Snapshot) bool {
		return s.Conversation.State == "expired" && slices.Contains(demoSteps(s), "link expired")
	})
	if status, page := c.get(link); status != http.StatusGone || !strings.Contains(page, "This link has expired") {
		t.Fatalf("expired link: %d %s", status, page)
	}
	// A new link works after the skip (all three parts share the clock).
	_, page := c.login(c.requestLink(conv, 2), "u-1001")
	if demoCodeRe.FindStringSubmatch(page) == nil {
		t.Fatalf("no code after a new link: %s", page)
	}
}

// The simulated platform refuses calls that are not signed by the bridge.
func TestDemoPlatformRefusesUnsignedCalls(t *testing.T) {
	d := startTestDemo(t, "memory")
	conv := newDemoClient(t, d).api("POST", "/api/conversations", nil).Conversation.ID
	body := `{"type":"stepup.message.post","timestamp":"2026-01-01T00:00:00Z","data":{"conversation_id":"` + conv + `","text":"phish","audience":"consumer"}}`
	req, _ := http.NewRequest("POST", d.URL+strings.TrimPrefix(playground.EndpointPath, "/"), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", "msg_1")
	req.Header.Set("webhook-timestamp", fmt.Sprint(time.Now().Unix()))
	req.Header.Set("webhook-signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned call: %d, want 401", resp.StatusCode)
	}
	// And the page's API refuses requests without its header (CSRF).
	resp, err = http.Post(d.URL+"api/conversations", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("API without X-Playground: %d, want 403", resp.StatusCode)
	}
}

func TestDemoRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.10:8080"} {
		_, err := startDemo(context.Background(), demoOptions{Listen: addr, Store: "memory", Log: slog.New(slog.DiscardHandler)})
		if !errors.Is(err, errNotLoopback) {
			t.Errorf("startDemo(%q) = %v, want errNotLoopback", addr, err)
		}
	}
}

// With Redis, the same story runs on the Redis store.
func TestDemoStepUpOnRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("Redis tier")
	}
	d := startTestDemo(t, "redis")
	c := newDemoClient(t, d)
	conv := c.api("POST", "/api/conversations", nil).Conversation.ID
	_, page := c.login(c.requestLink(conv, 1), "u-1003")
	c.waitFor(conv, "login verified", func(s playground.Snapshot) bool { return s.Conversation.State == "login_verified" })
	c.say(conv, "consumer", demoCodeRe.FindStringSubmatch(page)[1])
	s := c.waitFor(conv, "stepped up", func(s playground.Snapshot) bool { return s.Conversation.SteppedUp && s.Conversation.Identity != nil })
	if s.Conversation.Identity.Claims["customer_id"] != "C-1003" {
		t.Errorf("identity %+v", s.Conversation.Identity)
	}
}

func demoAtoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}
