// Package outbound builds the one HTTP client every adapter uses for calls
// to messaging platforms and brand endpoints: go-retryablehttp, configured on
// purpose rather than left at its defaults.
//
// The client retries a little, inside one outbox delivery, and only when a
// retry cannot do harm: long outages are the outbox's job (it retries later
// with backoff and dead-letters), not a worker blocked in a retry loop.
//
//   - A transport error is retried when the request provably never reached
//     the server (the dial failed: connection refused, DNS, dial timeout),
//     or when the request may be replayed: an idempotent method (GET, HEAD,
//     PUT, DELETE, OPTIONS) or a request carrying an idempotency key header
//     (Idempotency-Key or webhook-id by default).
//   - 429 and 5xx (except 501) are retried under the same replay condition;
//     other statuses are never retried here.
//   - Nothing is retried once the caller's context is done.
//   - Retry-After (429, 503) is honoured within the call only when it is
//     at most MaxRetryAfter. A longer wish ends the call at once: the
//     caller gets it in Error.RetryAfter and the outbox schedules the next
//     delivery then, so a worker is never parked for an hour
//     (go-retryablehttp #247, #295) and a rate-limited platform is not
//     hit again early.
//   - The caller sees the final response (PassthroughErrorHandler) and maps
//     it with Classify, which names method, redacted URL and status.
//   - URLs are logged and reported without query strings or userinfo
//     (go-retryablehttp #206).
//   - Each attempt has its own timeout (Options.Timeout); the whole call is
//     bounded by the caller's context.
//   - Redirects are not followed unless asked: a 3xx is reported as such.
package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// DefaultIdempotencyHeaders are the request headers whose presence makes a
// non-idempotent request (POST, PATCH) safe to send again: the server is
// expected to deduplicate on them.
var DefaultIdempotencyHeaders = []string{"Idempotency-Key", "webhook-id"}

// Defaults for zero Options fields.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultRetryMax      = 2
	DefaultRetryWaitMin  = 250 * time.Millisecond
	DefaultRetryWaitMax  = 2 * time.Second
	DefaultMaxRetryAfter = 5 * time.Second
	DefaultUserAgent     = "stepup-bridge"
)

// Options tune a client. The zero value is a sensible client.
type Options struct {
	// Timeout bounds each attempt (connect, send, response headers and
	// body). The whole call, retries included, is bounded by the request's
	// context. Default DefaultTimeout.
	Timeout time.Duration
	// RetryMax is the number of retries after the first attempt. 0 means
	// DefaultRetryMax; a negative value disables retries.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts (with jitter). Defaults DefaultRetryWaitMin/Max.
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	// MaxRetryAfter caps a server's Retry-After. Default DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// IdempotencyHeaders make a POST or PATCH replayable when present. nil
	// means DefaultIdempotencyHeaders; an empty non-nil slice means none.
	IdempotencyHeaders []string
	// FollowRedirects follows 3xx responses (Go's rules). Off by default: a
	// redirect is returned to the caller, who reports it.
	FollowRedirects bool
	// UserAgent is set on requests that carry none. Default DefaultUserAgent.
	UserAgent string
	// Transport is the base transport (tests, custom TLS roots). nil means
	// a clone of http.DefaultTransport. TLS verification is never disabled here.
	Transport http.RoundTripper
	// Logger receives the client's per-attempt logs, URLs redacted. nil
	// means no logging.
	Logger *slog.Logger
}

// NewClient builds the outbound client.
func NewClient(o Options) *retryablehttp.Client {
	o = o.withDefaults()
	p := &policy{opts: o}

	base := o.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		base = t
	}
	hc := &http.Client{Transport: &transport{base: base, policy: p}}
	if !o.FollowRedirects {
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}

	c := retryablehttp.NewClient()
	c.HTTPClient = hc
	c.Logger = nil
	if o.Logger != nil {
		c.Logger = leveledLogger{o.Logger}
	}
	c.RetryMax = max(o.RetryMax, 0)
	c.RetryWaitMin = o.RetryWaitMin
	c.RetryWaitMax = o.RetryWaitMax
	c.CheckRetry = p.checkRetry
	c.Backoff = p.backoff
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return c
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	switch {
	case o.RetryMax == 0:
		o.RetryMax = DefaultRetryMax
	case o.RetryMax < 0:
		o.RetryMax = 0
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = DefaultRetryWaitMin
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = DefaultRetryWaitMax
	}
	if o.RetryWaitMax < o.RetryWaitMin {
		o.RetryWaitMax = o.RetryWaitMin
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.IdempotencyHeaders == nil {
		o.IdempotencyHeaders = DefaultIdempotencyHeaders
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	return o
}

type policy struct{ opts Options }

// replayable reports whether sending req again cannot do harm.
func (p *policy) replayable(req *http.Request) bool {
	if req == nil {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	for _, h := range p.opts.IdempotencyHeaders {
		if req.Header.Get(h) != "" {
			return true
		}
	}
	return false
}

// checkRetry is the client's CheckRetry. It never returns an error, so the
// caller gets the last transport error or response as it was.
func (p *policy) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, nil
	}
	if err != nil {
		if neverRetry(err) {
			return false, nil
		}
		if unsent(err) {
			return true, nil
		}
		var ae *attemptError
		return errors.As(err, &ae) && ae.replayable, nil
	}
	if resp == nil {
		return false, nil
	}
	if resp.StatusCode == http.StatusTooManyRequests ||
		(resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented) {
		if p.waitTooLong(resp) {
			return false, nil
		}
		return p.replayable(resp.Request), nil
	}
	return false, nil
}

// waitTooLong reports a 429/503 whose Retry-After exceeds MaxRetryAfter:
// the outbox, not this call, waits for that.
func (p *policy) waitTooLong(resp *http.Response) bool {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return false
	}
	d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return ok && d > p.opts.MaxRetryAfter
}

// unsent reports whether the error shows the request never left: the
// connection (to the server or to the proxy) could not be made.
func unsent(err error) bool {
	for err != nil {
		var op *net.OpError
		if !errors.As(err, &op) {
			return false
		}
		if op.Op == "dial" || op.Op == "proxyconnect" {
			return true
		}
		err = op.Err
	}
	return false
}

var localErrRe = regexp.MustCompile(`unsupported protocol scheme|invalid header|stopped after \d+ redirects`)

// neverRetry: errors no retry can fix within one call (certificate
// problems, a bad URL scheme, an invalid header, a failed attempt hook).
func neverRetry(err error) bool {
	var (
		ua  x509.UnknownAuthorityError
		ci  x509.CertificateInvalidError
		hn  x509.HostnameError
		cve *tls.CertificateVerificationError
		he  *hookError
	)
	if errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &hn) || errors.As(err, &cve) || errors.As(err, &he) {
		return true
	}
	return localErrRe.MatchString(err.Error())
}

// backoff is exponential with jitter between RetryWaitMin and RetryWaitMax;
// a Retry-After on 429/503 replaces it (checkRetry only lets through one of
// at most MaxRetryAfter; the clamp is a second guard).
func (p *policy) backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(d, p.opts.MaxRetryAfter)
		}
	}
	d := minWait
	for i := 0; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	// Jitter in [d/2, d]: replicas hit by the same outage spread out.
	half := d / 2
	return half + rand.N(d-half+1)
}

// ParseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
// A date in the past gives 0.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		if s > int64(time.Duration(1<<63-1)/time.Second) {
			s = int64(time.Duration(1<<63-1) / time.Second)
		}
		return time.Duration(s) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

type attemptHookKey struct{}

// WithAttemptHook returns a context that makes a client built by NewClient
// call hook on each attempt's request just before it is sent (a private
// copy: the hook may set headers). Use it for anything that must be fresh
// per attempt, such as a signature over a timestamp. An error from the hook
// ends the call without retrying.
func WithAttemptHook(ctx context.Context, hook func(*http.Request) error) context.Context {
	return context.WithValue(ctx, attemptHookKey{}, hook)
}

// transport gives each attempt its timeout, user agent and attempt hook,
// and marks its errors with whether the request may be replayed (CheckRetry
// sees no request on a transport error). It deliberately has no
// CloseIdleConnections: go-retryablehttp calls it on every failed call and
// would empty the pool shared by all workers (#98, #237); idle connections
// still expire by the base transport's IdleConnTimeout.
type transport struct {
	base   http.RoundTripper
	policy *policy
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.policy.opts.Timeout)
	r := req.Clone(ctx)
	if r.Header.Get("User-Agent") == "" {
		r.Header.Set("User-Agent", t.policy.opts.UserAgent)
	}
	if hook, _ := req.Context().Value(attemptHookKey{}).(func(*http.Request) error); hook != nil {
		if err := hook(r); err != nil {
			cancel()
			if r.Body != nil {
				r.Body.Close()
			}
			return nil, &attemptError{err: &hookError{err}}
		}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		cancel()
		return nil, &attemptError{err: err, replayable: t.policy.replayable(r)}
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type attemptError struct {
	err        error
	replayable bool
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

type hookError struct{ err error }

func (e *hookError) Error() string { return "prepare attempt: " + e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// cancelOnClose releases the attempt's context once the body is done with.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
