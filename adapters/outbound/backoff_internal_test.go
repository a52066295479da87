package outbound

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoff(t *testing.T) {
	p := &policy{opts: Options{MaxRetryAfter: 5 * time.Second}.withDefaults()}
	minW, maxW := 100*time.Millisecond, 1*time.Second
	for attempt, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 50 {
			d := p.backoff(minW, maxW, attempt, nil)
			assert.GreaterOrEqual(t, d, want/2, "attempt %d", attempt)
			assert.LessOrEqual(t, d, want, "attempt %d", attempt)
		}
	}
	assert.LessOrEqual(t, p.backoff(minW, maxW, 200, nil), maxW, "no overflow on many attempts")

	resp := func(status int, ra string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {ra}}}
	}
	assert.Equal(t, 5*time.Second, p.backoff(minW, maxW, 0, resp(429, "3600")), "clamped")
	assert.Equal(t, 2*time.Second, p.backoff(minW, maxW, 0, resp(503, "2")))
	assert.Equal(t, 5*time.Second, p.backoff(minW, maxW, 0, resp(503, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))))
	assert.Equal(t, time.Duration(0), p.backoff(minW, maxW, 0, resp(503, "Mon, 02 Jan 2006 15:04:05 GMT")), "date in the past")
	d := p.backoff(minW, maxW, 0, resp(500, "3600"))
	assert.LessOrEqual(t, d, minW, "Retry-After only on 429/503")
	d = p.backoff(minW, maxW, 0, resp(429, "soon"))
	assert.LessOrEqual(t, d, minW, "unparsable Retry-After falls back to backoff")
	d = p.backoff(minW, maxW, 0, resp(429, "99999999999999999"))
	assert.Equal(t, 5*time.Second, d, "huge Retry-After does not overflow")
}

func TestDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	assert.Equal(t, DefaultRetryMax, o.RetryMax)
	assert.Equal(t, DefaultIdempotencyHeaders, o.IdempotencyHeaders)
	assert.Equal(t, 0, Options{RetryMax: -1}.withDefaults().RetryMax)
	assert.Empty(t, Options{IdempotencyHeaders: []string{}}.withDefaults().IdempotencyHeaders)
	c := NewClient(Options{RetryMax: -1})
	assert.Equal(t, 0, c.RetryMax)
}
