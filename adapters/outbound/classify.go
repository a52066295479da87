package outbound

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// SnippetMax bounds how much of an error response body an Error carries.
const SnippetMax = 200

// drainMax bounds how much of an error body is read to reuse the connection.
const drainMax = 64 << 10

// Error is a failed outbound call. Its text names the method, the redacted
// URL and the status (or the transport error) and at most SnippetMax bytes
// of the response body, sanitised; never headers, never a full body.
type Error struct {
	Method string // e.g. POST; empty if unknown
	URL    string // redacted: no userinfo, query values replaced, no fragment
	Status int    // 0 when no response arrived
	// RetryAfter is the server's Retry-After on a 429 or 503 (0 if none),
	// for the outbox to schedule the next delivery.
	RetryAfter time.Duration
	Snippet    string // start of the response body, sanitised
	Err        error  // the transport error; nil when a response arrived
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("outbound ")
	if e.Method != "" {
		b.WriteString(e.Method)
		b.WriteByte(' ')
		b.WriteString(e.URL)
	} else {
		b.WriteString("call")
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": status %d", e.Status)
		if t := http.StatusText(e.Status); t != "" {
			b.WriteByte(' ')
			b.WriteString(t)
		}
		if e.RetryAfter > 0 {
			fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
		}
		if e.Snippet != "" {
			fmt.Fprintf(&b, ": body %q", e.Snippet)
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(RedactText(e.Err.Error()))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// RetryAfterDelay is the server's Retry-After, for the outbox worker to
// wait at least that long before the next delivery (bounded by its own
// maximum backoff).
func (e *Error) RetryAfterDelay() time.Duration { return e.RetryAfter }

// Classify maps the outcome of a call to nil (2xx), an error marked with
// bridge.Permanent (a 4xx other than 408, 425 and 429, or a request that can
// never succeed such as an unsupported URL scheme), or a retryable *Error
// (anything else: 3xx, 408, 425, 429, 5xx, transport errors, timeouts).
//
// On 2xx the response body is left for the caller to read and close; on
// any other outcome Classify reads at most a bounded snippet, drains a
// little for connection reuse, and closes the body.
func Classify(resp *http.Response, err error) error {
	if err != nil {
		if resp != nil && resp.Body != nil {
			drain(resp.Body)
		}
		e := &Error{Err: err}
		var ue *url.Error
		if errors.As(err, &ue) {
			e.Method = strings.ToUpper(ue.Op)
			e.URL = redactRaw(ue.URL)
			e.Err = ue.Err
		}
		var ae *attemptError
		if errors.As(e.Err, &ae) {
			e.Err = ae.err
		}
		if permanentTransport(err) {
			return bridge.Permanent(e)
		}
		return e
	}
	if resp == nil {
		return &Error{Err: errors.New("no response")}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	e := &Error{Status: resp.StatusCode}
	if resp.Request != nil {
		e.Method = resp.Request.Method
		e.URL = RedactURL(resp.Request.URL)
	}
	if resp.Body != nil {
		e.Snippet = snippet(resp.Body)
		drain(resp.Body)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter, _ = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	switch s := resp.StatusCode; {
	case s == http.StatusRequestTimeout, s == http.StatusTooEarly, s == http.StatusTooManyRequests:
		return e
	case s >= 400 && s < 500:
		return bridge.Permanent(e)
	}
	return e
}

// Do sends req with c and classifies the outcome. On 2xx it returns the
// response, whose body the caller must close. Otherwise it returns the
// Classify error, naming the request's method and redacted URL even when
// the call ended without a response (context done during a backoff wait).
func Do(c *retryablehttp.Client, req *retryablehttp.Request) (*http.Response, error) {
	resp, err := c.Do(req)
	if err := Classify(resp, err); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Method == "" {
			e.Method = req.Method
			e.URL = RedactURL(req.URL)
		}
		return nil, err
	}
	return resp, nil
}

// permanentTransport: transport errors that no later delivery can fix
// either, because the request itself is wrong.
func permanentTransport(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "unsupported protocol scheme") ||
		strings.Contains(msg, "invalid header") ||
		strings.Contains(msg, "no Host in request URL")
}

func snippet(body io.Reader) string {
	buf, _ := io.ReadAll(io.LimitReader(body, SnippetMax+1))
	truncated := len(buf) > SnippetMax
	if truncated {
		buf = buf[:SnippetMax]
		// Do not cut a UTF-8 sequence in half.
		for len(buf) > 0 && !utf8.Valid(buf) && len(buf) > SnippetMax-utf8.UTFMax {
			buf = buf[:len(buf)-1]
		}
	}
	s := strings.ToValidUTF8(string(buf), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	s = RedactText(s)
	if truncated && s != "" {
		s += "…"
	}
	return s
}

func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainMax))
	_ = body.Close()
}
