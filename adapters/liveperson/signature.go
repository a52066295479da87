package liveperson

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/adapters/internal/hmacpool"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Webhook headers (reference liveperson.md §2.4).
const (
	HeaderAccountID = "X-Liveperson-Account-Id"
	HeaderClientID  = "X-Liveperson-Client-Id"
	HeaderSignature = "X-Liveperson-Signature"
)

// Verification failures. Each wraps bridge.ErrUnauthenticated as well.
var (
	ErrMissingHeader = errors.New("missing x-liveperson header")
	ErrWrongAccount  = errors.New("x-liveperson-account-id is not this brand's account")
	ErrWrongClient   = errors.New("x-liveperson-client-id is not this brand's app install")
	ErrBadSignature  = errors.New("x-liveperson-signature does not match the body")
)

// Sign returns the x-liveperson-signature value LivePerson sends by
// default: "sha1=" + base64(HMAC-SHA1(secret, body)). Tests and the fake
// platform use it; alg "sha256" and hex give the other configurations.
func Sign(secret []byte, body []byte, alg string, hexEncoding bool) string {
	m := hmac.New(hashFor(alg), secret)
	m.Write(body)
	sum := m.Sum(nil)
	if hexEncoding {
		return alg + "=" + hex.EncodeToString(sum)
	}
	return alg + "=" + base64.StdEncoding.EncodeToString(sum)
}

func hashFor(alg string) func() hash.Hash {
	if alg == "sha256" {
		return sha256.New
	}
	return sha1.New
}

// Verify authenticates a webhook: the account and app install headers must
// be this brand's, and the signature an HMAC of the raw body under the app
// secret. LivePerson signs with SHA-1 by default and SHA-256 when the
// account asks for it, in base64 or hex as configured on its side, so all
// four forms are accepted; the digest length tells the encoding apart.
// The body is hashed as received: re-serialised JSON (or an ASCII-only
// reading of it) breaks on emoji. There is no timestamp to bound replays:
// duplicates are caught by the event ids the store deduplicates on.
func Verify(h http.Header, body []byte, accountID, clientID string, secret []byte) error {
	return verify(h, body, accountID, clientID, newMACs(secret))
}

// macs is an app secret's keyed HMACs, pooled, one pool per algorithm
// LivePerson may sign with: a warm check allocates nothing.
type macs struct{ sha1, sha256 *hmacpool.Pool }

func newMACs(secret []byte) macs {
	return macs{sha1: hmacpool.New(sha1.New, secret), sha256: hmacpool.New(sha256.New, secret)}
}

// verify is Verify with the adapter's pooled HMACs.
func verify(h http.Header, body []byte, accountID, clientID string, k macs) error {
	acc, cli, sig := h.Get(HeaderAccountID), h.Get(HeaderClientID), h.Get(HeaderSignature)
	for _, v := range []struct{ name, v string }{{"x-liveperson-account-id", acc}, {"x-liveperson-client-id", cli}, {"x-liveperson-signature", sig}} {
		if strings.TrimSpace(v.v) == "" {
			return unauthenticated(ErrMissingHeader, v.name)
		}
	}
	// Ids are not secret; the comparisons are constant-time anyway.
	if subtle.ConstantTimeCompare([]byte(acc), []byte(accountID)) != 1 {
		return unauthenticated(ErrWrongAccount, "")
	}
	if subtle.ConstantTimeCompare([]byte(cli), []byte(clientID)) != 1 {
		return unauthenticated(ErrWrongClient, "")
	}
	alg, enc, ok := strings.Cut(strings.TrimSpace(sig), "=")
	alg = strings.ToLower(alg)
	pool, size := k.sha1, sha1.Size
	switch {
	case !ok || (alg != "sha1" && alg != "sha256"):
		return unauthenticated(ErrBadSignature, "expected sha1= or sha256=")
	case alg == "sha256":
		pool, size = k.sha256, sha256.Size
	}
	m := pool.Get()
	defer pool.Put(m)
	got, ok := decodeDigest(m, enc, size)
	if !ok {
		return unauthenticated(ErrBadSignature, "not a base64 or hex "+alg+" digest")
	}
	m.Write(body)
	if !hmac.Equal(got, m.Sum()) {
		return unauthenticated(ErrBadSignature, "")
	}
	return nil
}

// decodeDigest reads a digest of size bytes as hex (2·size characters) or
// base64 (padded or not), into m's buffer. Longer text cannot be one, and
// is not decoded.
func decodeDigest(m *hmacpool.MAC, s string, size int) ([]byte, bool) {
	if len(s) == 2*size {
		if b, err := m.Decode(hex.AppendDecode, s); err == nil {
			return b, true
		}
	}
	if len(s) > base64.StdEncoding.EncodedLen(size) {
		return nil, false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := m.Decode(enc.AppendDecode, s); err == nil && len(b) == size {
			return b, true
		}
	}
	return nil, false
}

func unauthenticated(reason error, detail string) error {
	if detail != "" {
		return fmt.Errorf("%w: %w (%s)", bridge.ErrUnauthenticated, reason, detail)
	}
	return fmt.Errorf("%w: %w", bridge.ErrUnauthenticated, reason)
}
