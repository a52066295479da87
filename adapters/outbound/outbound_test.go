package outbound_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/outbound"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// fast keeps the waits short so the suite stays quick.
func fast(o outbound.Options) outbound.Options {
	if o.RetryWaitMin == 0 {
		o.RetryWaitMin = time.Millisecond
	}
	if o.RetryWaitMax == 0 {
		o.RetryWaitMax = 5 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	return o
}

// script answers each request with the next status (the last one repeats)
// and counts hits.
type script struct {
	mu       sync.Mutex
	statuses []int
	header   http.Header
	body     string
	hits     atomic.Int32
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(s.hits.Add(1))
	s.mu.Lock()
	st := s.statuses[min(n, len(s.statuses))-1]
	s.mu.Unlock()
	for k, v := range s.header {
		w.Header()[k] = v
	}
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(st)
	_, _ = io.WriteString(w, s.body)
}

func newScript(t *testing.T, statuses ...int) (*script, *httptest.Server) {
	t.Helper()
	s := &script{statuses: statuses}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func post(t *testing.T, ctx context.Context, url string, header map[string]string) *retryablehttp.Request {
	t.Helper()
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, url, []byte(`{"type":"x"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return req
}

func TestRetriesWhenReplayable(t *testing.T) {
	cases := []struct {
		name   string
		method string
		header map[string]string
	}{
		{"POST with Idempotency-Key", http.MethodPost, map[string]string{"Idempotency-Key": "k1"}},
		{"POST with webhook-id", http.MethodPost, map[string]string{"webhook-id": "msg_1"}},
		{"PUT", http.MethodPut, nil},
		{"GET", http.MethodGet, nil},
		{"DELETE", http.MethodDelete, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, srv := newScript(t, 503, 200)
			c := outbound.NewClient(fast(outbound.Options{}))
			req, err := retryablehttp.NewRequestWithContext(t.Context(), tc.method, srv.URL+"/hook", []byte("{}"))
			require.NoError(t, err)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := outbound.Do(c, req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode)
			assert.EqualValues(t, 2, s.hits.Load())
		})
	}
}

func TestPostWithoutKeyIsNotRetried(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504, 429} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			s, srv := newScript(t, status, 200)
			c := outbound.NewClient(fast(outbound.Options{}))
			_, err := outbound.Do(c, post(t, t.Context(), srv.URL, nil))
			require.Error(t, err)
			assert.EqualValues(t, 1, s.hits.Load(), "a POST without idempotency key must not be sent twice")
			assert.False(t, bridge.IsPermanent(err), "a %d is for the outbox to retry", status)
			var oe *outbound.Error
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, status, oe.Status)
		})
	}
}

func TestIdempotencyHeadersConfigurable(t *testing.T) {
	s, srv := newScript(t, 503, 200)
	c := outbound.NewClient(fast(outbound.Options{IdempotencyHeaders: []string{"X-Request-Id"}}))
	_, err := outbound.Do(c, post(t, t.Context(), srv.URL, map[string]string{"Idempotency-Key": "k"}))
	require.Error(t, err, "Idempotency-Key is not in the configured set")
	assert.EqualValues(t, 1, s.hits.Load())

	s, srv = newScript(t, 503, 200)
	resp, err := outbound.Do(c, post(t, t.Context(), srv.URL, map[string]string{"X-Request-Id": "k"}))
	require.NoError(t, err)
	resp.Body.Close()
	assert.EqualValues(t, 2, s.hits.Load())
}

func TestStatusesNeverRetried(t *testing.T) {
	cases := []struct {
		status    int
		permanent bool
	}{
		{400, true}, {401, true}, {403, true}, {404, true}, {409, true}, {410, true}, {422, true},
		{408, false}, {425, false}, {501, false}, {302, false},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			s, srv := newScript(t, tc.status, 200)
			s.header = http.Header{"Location": {"/elsewhere"}}
			c := outbound.NewClient(fast(outbound.Options{}))
			_, err := outbound.Do(c, post(t, t.Context(), srv.URL, map[string]string{"Idempotency-Key": "k"}))
			require.Error(t, err)
			assert.EqualValues(t, 1, s.hits.Load(), "status %d must not be retried in-process (nor redirected)", tc.status)
			assert.Equal(t, tc.permanent, bridge.IsPermanent(err), err.Error())
			assert.Contains(t, err.Error(), "POST ")
			assert.Contains(t, err.Error(), "status "+strconv.Itoa(tc.status))
		})
	}
}

// countingTransport counts attempts that reached the transport.
type countingTransport struct {
	n    atomic.Int32
	base http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestConnectionRefusedIsRetried(t *testing.T) {
	ct := &countingTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
	c := outbound.NewClient(fast(outbound.Options{Transport: ct}))
	// A POST without idempotency key: the dial failed, so it never left.
	_, err := outbound.Do(c, post(t, t.Context(), "http://"+closedAddr(t)+"/hook", nil))
	require.Error(t, err)
	assert.EqualValues(t, 1+outbound.DefaultRetryMax, ct.n.Load())
	assert.False(t, bridge.IsPermanent(err))
	assert.Contains(t, err.Error(), "POST http://")
	assert.Contains(t, err.Error(), "connection refused")
}

func TestBrokenConnectionAfterSend(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // the request arrived; no answer
		}
	}))
	t.Cleanup(srv.Close)

	c := outbound.NewClient(fast(outbound.Options{}))
	_, err := outbound.Do(c, post(t, t.Context(), srv.URL, nil))
	require.Error(t, err)
	assert.EqualValues(t, 1, hits.Load(), "it may have been processed: no replay without a key")
	assert.False(t, bridge.IsPermanent(err))

	hits.Store(0)
	_, err = outbound.Do(c, post(t, t.Context(), srv.URL, map[string]string{"webhook-id": "msg_1"}))
	require.Error(t, err)
	assert.EqualValues(t, 1+outbound.DefaultRetryMax, hits.Load())
}

func TestRetryAfter(t *testing.T) {
	c := outbound.NewClient(fast(outbound.Options{MaxRetryAfter: 2 * time.Second}))
	key := map[string]string{"Idempotency-Key": "k"}

	// A short wish is honoured within the call.
	s, srv := newScript(t, 429, 200)
	s.header = http.Header{"Retry-After": {"0"}}
	resp, err := outbound.Do(c, post(t, t.Context(), srv.URL, key))
	require.NoError(t, err)
	resp.Body.Close()
	assert.EqualValues(t, 2, s.hits.Load())

	// A long one ends the call at once, without hitting a rate-limited or
	// overloaded platform again early: the caller (the outbox) gets the
	// wish and waits for it.
	for _, status := range []int{429, 503} {
		s, srv = newScript(t, status, 200)
		s.header = http.Header{"Retry-After": {"3600"}}
		_, err = outbound.Do(c, post(t, t.Context(), srv.URL, key))
		var oe *outbound.Error
		require.ErrorAs(t, err, &oe, "status %d", status)
		assert.Equal(t, time.Hour, oe.RetryAfter)
		assert.Equal(t, time.Hour, oe.RetryAfterDelay())
		assert.EqualValues(t, 1, s.hits.Load(), "status %d: not retried within the call", status)
		assert.False(t, bridge.IsPermanent(err))
	}

	// Without Retry-After, 503 is retried within the call as before.
	s, srv = newScript(t, 503)
	_, err = outbound.Do(c, post(t, t.Context(), srv.URL, key))
	require.Error(t, err)
	assert.EqualValues(t, 1+outbound.DefaultRetryMax, s.hits.Load())
}

func TestAttemptTimeout(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client leaving
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	c := outbound.NewClient(fast(outbound.Options{Timeout: 50 * time.Millisecond}))

	_, err := outbound.Do(c, post(t, t.Context(), srv.URL, nil))
	require.Error(t, err)
	assert.EqualValues(t, 1, hits.Load())
	assert.False(t, bridge.IsPermanent(err))
	assert.True(t, errors.Is(err, context.DeadlineExceeded), err.Error())

	hits.Store(0)
	_, err = outbound.Do(c, post(t, t.Context(), srv.URL, map[string]string{"Idempotency-Key": "k"}))
	require.Error(t, err)
	assert.EqualValues(t, 1+outbound.DefaultRetryMax, hits.Load())
}

func TestNoRetryOnceContextDone(t *testing.T) {
	s, srv := newScript(t, 503)
	c := outbound.NewClient(outbound.Options{RetryWaitMin: time.Second, RetryWaitMax: time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := outbound.Do(c, post(t, ctx, srv.URL, map[string]string{"Idempotency-Key": "k"}))
	require.Error(t, err)
	assert.Less(t, time.Since(start), 900*time.Millisecond, "the backoff wait must end with the context")
	assert.EqualValues(t, 1, s.hits.Load())
	assert.False(t, bridge.IsPermanent(err))
	assert.Contains(t, err.Error(), "POST "+srv.URL)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), err.Error())
}

func TestRedaction(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := outbound.NewClient(fast(outbound.Options{Logger: logger}))

	s, srv := newScript(t, 503)
	s.body = "upstream says: see " + srv.URL + "/x?token=secret for details"
	u := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1) + "/hook?token=secret&b=2#frag"
	_, err := outbound.Do(c, post(t, t.Context(), u, map[string]string{"Idempotency-Key": "k"}))
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "/hook?b=REDACTED&token=REDACTED")
	assert.Contains(t, msg, "status 503")
	for _, leaked := range []string{"secret", "hunter2", "user", "frag"} {
		assert.NotContains(t, msg, leaked)
		assert.NotContains(t, logs.String(), leaked)
	}
	assert.Contains(t, logs.String(), "retrying request")

	// Transport errors quote the full URL; it must be redacted there too.
	logs.Reset()
	_, err = outbound.Do(c, post(t, t.Context(), "http://user:hunter2@"+closedAddr(t)+"/hook?token=secret", nil))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret")
	assert.NotContains(t, err.Error(), "hunter2")
	assert.NotContains(t, logs.String(), "secret")
	assert.NotContains(t, logs.String(), "hunter2")
	assert.Contains(t, err.Error(), "token=REDACTED")
}

func TestSnippetIsBounded(t *testing.T) {
	s, srv := newScript(t, 400)
	s.body = "first line\nsecond line\r\n" + strings.Repeat("é", 10_000)
	c := outbound.NewClient(fast(outbound.Options{}))
	_, err := outbound.Do(c, post(t, t.Context(), srv.URL, nil))
	var oe *outbound.Error
	require.ErrorAs(t, err, &oe)
	assert.LessOrEqual(t, len(oe.Snippet), outbound.SnippetMax+len("…"))
	assert.True(t, strings.HasPrefix(oe.Snippet, "first line second line é"), oe.Snippet)
	assert.NotContains(t, oe.Snippet, "\n")
	assert.Less(t, len(err.Error()), 400)
}

func TestSuccessLeavesBody(t *testing.T) {
	s, srv := newScript(t, 201)
	s.body = `{"ok":true}`
	c := outbound.NewClient(fast(outbound.Options{}))
	resp, err := outbound.Do(c, post(t, t.Context(), srv.URL, nil))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, `{"ok":true}`, string(b))
	assert.Equal(t, outbound.DefaultUserAgent, resp.Request.Header.Get("User-Agent"))
}

func TestAttemptHookRunsPerAttempt(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Attempt"))
		n := len(seen)
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(503)
		}
	}))
	t.Cleanup(srv.Close)
	var n atomic.Int32
	ctx := outbound.WithAttemptHook(t.Context(), func(r *http.Request) error {
		r.Header.Set("X-Attempt", strconv.Itoa(int(n.Add(1))))
		return nil
	})
	c := outbound.NewClient(fast(outbound.Options{}))
	resp, err := outbound.Do(c, post(t, ctx, srv.URL, map[string]string{"webhook-id": "msg_1"}))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"1", "2", "3"}, seen)

	// A failing hook ends the call: nothing is sent, nothing retried.
	ctx = outbound.WithAttemptHook(t.Context(), func(*http.Request) error { return errors.New("no key") })
	_, err = outbound.Do(c, post(t, ctx, srv.URL, map[string]string{"webhook-id": "msg_2"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "prepare attempt: no key")
	assert.Len(t, seen, 3)
}

func TestClassify(t *testing.T) {
	assert.NoError(t, outbound.Classify(&http.Response{StatusCode: 204, Body: http.NoBody}, nil))
	err := outbound.Classify(nil, errors.New("boom"))
	require.Error(t, err)
	assert.False(t, bridge.IsPermanent(err))

	c := outbound.NewClient(fast(outbound.Options{}))
	_, err = outbound.Do(c, post(t, t.Context(), "ftp://example.invalid/x?token=secret", nil))
	require.Error(t, err)
	assert.True(t, bridge.IsPermanent(err), err.Error())
	assert.NotContains(t, err.Error(), "secret")
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"https://api.example.com/v1/x":                  "https://api.example.com/v1/x",
		"https://u:p@api.example.com/v1/x?a=1&token=zz": "https://api.example.com/v1/x?a=REDACTED&token=REDACTED",
		"https://api.example.com/x?%zz":                 "https://api.example.com/x?REDACTED",
		"https://api.example.com/x#access_token=zz":     "https://api.example.com/x",
	}
	for in, want := range cases {
		assert.Equal(t, want, outbound.RedactText(in), in)
	}
	assert.Equal(t, `Post "https://h/x?k=REDACTED": EOF`, outbound.RedactText(`Post "https://h/x?k=v": EOF`))
}
