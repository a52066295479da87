package standard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// The headers as net/http stores them: looking them up by these spares
// a canonicalisation (an allocation) per header per request.
var (
	canonicalID        = http.CanonicalHeaderKey(HeaderID)
	canonicalTimestamp = http.CanonicalHeaderKey(HeaderTimestamp)
	canonicalSignature = http.CanonicalHeaderKey(HeaderSignature)
)

// SecretPrefix marks a symmetric Standard Webhooks secret.
const SecretPrefix = "whsec_"

// MinSecretBytes is the shortest secret accepted (the spec: 24 to 64 bytes).
const MinSecretBytes = 24

// DefaultTolerance is the replay window when none is configured (the
// official libraries use five minutes).
const DefaultTolerance = 5 * time.Minute

// Verification failures. Each wraps bridge.ErrUnauthenticated as well.
var (
	ErrMissingHeader   = errors.New("missing Standard Webhooks header")
	ErrBadTimestamp    = errors.New("webhook-timestamp is not integer unix seconds")
	ErrTimestampTooOld = errors.New("webhook-timestamp too old")
	ErrTimestampTooNew = errors.New("webhook-timestamp too new")
	ErrBadSignature    = errors.New("no valid webhook-signature")
	ErrNoSecret        = errors.New("no webhook secret configured")
	errSecretMalformed = errors.New("webhook secret is not whsec_<base64>")
	errSecretTooShort  = fmt.Errorf("webhook secret shorter than %d bytes", MinSecretBytes)
)

const (
	signatureVersionV1 = "v1"
	signatureSeparator = ","
)

// ParseSecret decodes a "whsec_<base64>" secret into its HMAC key. The
// prefix may be omitted (as the official libraries allow); the key must be
// at least MinSecretBytes long. The error never contains the secret.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix)
	if s == "" {
		return nil, errSecretMalformed
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errSecretMalformed
	}
	if len(key) < MinSecretBytes {
		return nil, errSecretTooShort
	}
	return key, nil
}

// Sign returns the v1 signature ("v1,<base64 HMAC-SHA256>") of
// "<id>.<unix seconds>.<body>".
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	return signatureVersionV1 + signatureSeparator + base64.StdEncoding.EncodeToString(mac(secret, id, ts.Unix(), body))
}

// SignHeader sets the three Standard Webhooks headers on h for one attempt.
func SignHeader(h http.Header, secret []byte, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(secret, id, ts, body))
}

func mac(secret []byte, id string, unix int64, body []byte) []byte {
	return sum(hmac.New(sha256.New, secret), id, unix, body)
}

// sum writes "<id>.<unix>.<body>" to the keyed HMAC m and returns its sum.
func sum(m hash.Hash, id string, unix int64, body []byte) []byte {
	// "<id>.<unix>." appended by hand: fmt.Fprintf cost more than hashing it.
	prefix := append(make([]byte, 0, len(id)+22), id...)
	prefix = append(strconv.AppendInt(append(prefix, '.'), unix, 10), '.')
	m.Write(prefix)
	m.Write(body)
	return m.Sum(nil)
}

// keyring is the adapter's secrets with a pool of keyed HMACs each:
// hmac.New allocates six objects and hashes the key into both pads on
// every call, and Reset returns a used HMAC to its keyed state.
type keyring struct {
	keys [][]byte
	macs []sync.Pool // macs[i] holds hash.Hash values keyed with keys[i]
}

func newKeyring(keys [][]byte) *keyring {
	return &keyring{keys: keys, macs: make([]sync.Pool, len(keys))}
}

func (k *keyring) count() int { return len(k.keys) }

// sums returns the v1 MAC of the request under each key, in key order.
func (k *keyring) sums(id string, unix int64, body []byte) [][]byte {
	out := make([][]byte, len(k.keys))
	for i := range k.keys {
		m, _ := k.macs[i].Get().(hash.Hash)
		if m == nil {
			m = hmac.New(sha256.New, k.keys[i])
		}
		out[i] = sum(m, id, unix, body)
		m.Reset()
		k.macs[i].Put(m)
	}
	return out
}

// Verify authenticates a Standard Webhooks request on its raw body and
// returns its webhook-id. The three headers are required; webhook-timestamp
// must be canonical integer seconds; webhook-signature is a space-separated
// list, and the request is authentic if any v1 entry matches any of the
// secrets (rotation); other versions (v1a) are ignored. The signature is
// checked before the replay window, so a forged request reports a bad
// signature and only an authentic one learns that it is stale. tolerance
// <= 0 means DefaultTolerance. Errors wrap bridge.ErrUnauthenticated and
// one of this package's sentinels.
func Verify(secrets [][]byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) (id string, err error) {
	return verify(plainKeys(secrets), header, body, now, tolerance)
}

// macSource gives the expected v1 MACs of a request, one per secret.
type macSource interface {
	count() int
	sums(id string, unix int64, body []byte) [][]byte
}

// plainKeys computes each MAC afresh (Verify's callers: tests, tools).
type plainKeys [][]byte

func (k plainKeys) count() int { return len(k) }

func (k plainKeys) sums(id string, unix int64, body []byte) [][]byte {
	out := make([][]byte, len(k))
	for i, key := range k {
		out[i] = mac(key, id, unix, body)
	}
	return out
}

// verify is Verify with the MACs from keys.
func verify[K macSource](keys K, header http.Header, body []byte, now time.Time, tolerance time.Duration) (id string, err error) {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	id = header.Get(canonicalID)
	rawTS := header.Get(canonicalTimestamp)
	sigs := strings.Join(header.Values(canonicalSignature), " ")
	for _, h := range []struct{ name, v string }{{HeaderID, id}, {HeaderTimestamp, rawTS}, {HeaderSignature, sigs}} {
		if strings.TrimSpace(h.v) == "" {
			return "", unauthenticated(ErrMissingHeader, h.name)
		}
	}
	ts, err := strconv.ParseInt(rawTS, 10, 64)
	if err != nil || ts < 0 || strconv.FormatInt(ts, 10) != rawTS {
		return "", unauthenticated(ErrBadTimestamp, "")
	}
	if keys.count() == 0 {
		return "", unauthenticated(ErrNoSecret, "")
	}

	expected := keys.sums(id, ts, body)
	seenV1 := false
	ok := false
	for _, entry := range strings.Fields(sigs) {
		version, sig, found := strings.Cut(entry, signatureSeparator)
		if !found || version != signatureVersionV1 {
			continue // unknown scheme (v1a, future ones): not ours to judge
		}
		seenV1 = true
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		for _, e := range expected {
			// Every comparison runs; hmac.Equal is constant-time.
			if hmac.Equal(got, e) {
				ok = true
			}
		}
	}
	if !ok {
		if !seenV1 {
			return "", unauthenticated(ErrBadSignature, "no v1 entry")
		}
		return "", unauthenticated(ErrBadSignature, "")
	}

	// In whole seconds: time.Duration would overflow on absurd timestamps.
	age, tol := max(now.Unix(), 0)-ts, int64(tolerance/time.Second) // both >= 0: no overflow
	switch {
	case age > tol:
		return "", unauthenticated(ErrTimestampTooOld, fmt.Sprintf("%ds old, tolerance %s", age, tolerance))
	case -age > tol:
		return "", unauthenticated(ErrTimestampTooNew, fmt.Sprintf("%ds ahead, tolerance %s", -age, tolerance))
	}
	return id, nil
}

func unauthenticated(reason error, detail string) error {
	if detail != "" {
		return fmt.Errorf("%w: %w (%s)", bridge.ErrUnauthenticated, reason, detail)
	}
	return fmt.Errorf("%w: %w", bridge.ErrUnauthenticated, reason)
}
