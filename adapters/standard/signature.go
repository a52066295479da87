package standard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/internal/hmacpool"
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
	return sum(hmacpool.NewMAC(sha256.New, secret), id, unix, body)
}

// sum writes "<id>.<unix>.<body>" to the keyed HMAC m and returns its sum.
func sum(m *hmacpool.MAC, id string, unix int64, body []byte) []byte {
	m.WriteString(id)
	m.WriteString(".")
	m.WriteInt(unix)
	m.WriteString(".")
	m.Write(body)
	return m.Sum()
}

// keyring is the adapter's secrets, each with a pool of keyed HMACs.
type keyring []*hmacpool.Pool

func newKeyring(keys [][]byte) keyring {
	k := make(keyring, len(keys))
	for i, key := range keys {
		k[i] = hmacpool.New(sha256.New, key)
	}
	return k
}

// maxSigText is the length of a v1 signature's base64 (HMAC-SHA256, padded):
// a longer entry cannot match, and is not decoded.
var maxSigText = base64.StdEncoding.EncodedLen(sha256.Size)

// match checks the space-separated entries of sigs against the request's v1
// MAC under each key. Every v1 entry is compared with every key's MAC, in
// constant time (hmac.Equal); seenV1 reports whether there was a v1 entry.
func (k keyring) match(id string, unix int64, body []byte, sigs string) (seenV1, ok bool) {
	for _, p := range k {
		m := p.Get()
		expected := sum(m, id, unix, body)
		for entry := range strings.FieldsSeq(sigs) {
			version, sig, found := strings.Cut(entry, signatureSeparator)
			if !found || version != signatureVersionV1 {
				continue // unknown scheme (v1a, future ones): not ours to judge
			}
			seenV1 = true
			if len(sig) > maxSigText {
				continue
			}
			got, err := m.Decode(base64.StdEncoding.AppendDecode, sig)
			if err == nil && hmac.Equal(got, expected) {
				ok = true
			}
		}
		p.Put(m)
	}
	return seenV1, ok
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
	return verify(newKeyring(secrets), header, body, now, tolerance)
}

// verify is Verify with the adapter's pooled keys.
func verify(keys keyring, header http.Header, body []byte, now time.Time, tolerance time.Duration) (id string, err error) {
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
	var canonical [20]byte
	if err != nil || ts < 0 || string(strconv.AppendInt(canonical[:0], ts, 10)) != rawTS {
		return "", unauthenticated(ErrBadTimestamp, "")
	}
	if len(keys) == 0 {
		return "", unauthenticated(ErrNoSecret, "")
	}
	if seenV1, ok := keys.match(id, ts, body, sigs); !ok {
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
