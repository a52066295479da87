package oidc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MaxResponseBytes bounds every body read from the identity provider
// (discovery document, JWK Set, token response).
const MaxResponseBytes = 1 << 20

// maxResponseHeaderBytes bounds the response headers of the default client.
const maxResponseHeaderBytes = 64 << 10

var errTooLarge = fmt.Errorf("response body larger than %d bytes", MaxResponseBytes)

// newHTTPClient is the client for calls to the identity provider: the given
// one (copied, never modified) or a fresh one with its own transport. It
// gets the timeout if it has none, and never follows redirects (the token
// request carries client credentials; discovery must answer directly).
func newHTTPClient(base *http.Client, timeout time.Duration) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxResponseHeaderBytes = maxResponseHeaderBytes
		t.ResponseHeaderTimeout = timeout
		c.Transport = t
	}
	if c.Timeout == 0 {
		c.Timeout = timeout
	}
	if c.CheckRedirect == nil {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

// readLimited reads all of r, failing if it holds more than MaxResponseBytes.
func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxResponseBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxResponseBytes {
		return nil, errTooLarge
	}
	return b, nil
}

// drain discards what is left of a body (bounded) so the connection can be
// reused, then closes it.
func drain(body io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}

// isLoopback reports whether host (no port) is a loopback name or address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkURL checks an issuer, endpoint or redirect URL: absolute, no user
// info or fragment, https — or http on a loopback host when allowHTTP.
func checkURL(raw string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	switch {
	case u.Host == "" || u.Opaque != "":
		return nil, errors.New("not an absolute URL")
	case u.User != nil:
		return nil, errors.New("must not carry user info")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, errors.New("must not carry a fragment")
	case u.Scheme == "https":
		return u, nil
	case u.Scheme == "http" && allowHTTP && isLoopback(u.Hostname()):
		return u, nil
	case u.Scheme == "http" && allowHTTP:
		return nil, errors.New("http is allowed on loopback hosts only")
	default:
		return nil, errors.New("must be https")
	}
}
