package bridge

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
)

// Token is an unguessable bearer value (login link ticket, login
// transaction cookie). It carries the partition of the conversation it
// belongs to, so a store can find its keys without a lookup, and 128 random
// bits. Stores keep only Hash(); the raw value lives in the link or cookie.
type Token struct {
	Partition uint16
	Secret    [16]byte
}

const tokenLen = 24 // base64url of 2+16 bytes, no padding

// NewToken mints a token in the partition of key.
func NewToken(key Key) Token { return NewTokenIn(key.Partition()) }

// NewTokenIn mints a token in the given partition.
func NewTokenIn(partition uint16) Token {
	t := Token{Partition: partition}
	rand.Read(t.Secret[:]) // crypto/rand.Read never fails (Go 1.24+)
	return t
}

// PKCEChallenge is the S256 code challenge of a PKCE verifier (RFC 7636).
func PKCEChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// String is the URL-safe text form.
func (t Token) String() string {
	var b [18]byte
	binary.BigEndian.PutUint16(b[:2], t.Partition)
	copy(b[2:], t.Secret[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Hash is what stores keep: hex SHA-256 of the whole token.
func (t Token) Hash() string {
	var b [18]byte
	binary.BigEndian.PutUint16(b[:2], t.Partition)
	copy(b[2:], t.Secret[:])
	sum := sha256.Sum256(b[:])
	return hex.EncodeToString(sum[:])
}

var errBadToken = errors.New("malformed token")

// ParseToken reads a token's text form.
func ParseToken(s string) (Token, error) {
	var t Token
	if len(s) != tokenLen {
		return t, errBadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 18 {
		return t, errBadToken
	}
	t.Partition = binary.BigEndian.Uint16(b[:2])
	if t.Partition >= Partitions {
		return t, errBadToken
	}
	copy(t.Secret[:], b[2:])
	return t, nil
}

// RandomString returns n random bytes as base64url (state, nonce, ids).
func RandomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewCode returns a numeric confirm code of the given length.
func NewCode(length int) string {
	const digits = "0123456789"
	b := make([]byte, length)
	for i := range b {
		b[i] = digits[randIntn(10)]
	}
	return string(b)
}

func randIntn(n int) int {
	// Rejection sampling over one byte keeps the digits uniform.
	var b [1]byte
	limit := 256 - 256%n
	for {
		rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// NormalizeCode extracts a code from a consumer message: the message must be
// only the code, optionally with spaces, dashes or dots between digits
// ("123 456", "123-456"). Anything else is an ordinary message ("").
func NormalizeCode(text string, length int) string {
	text = strings.TrimSpace(text)
	if len(text) > 3*length {
		return ""
	}
	var b strings.Builder
	for _, r := range text {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.':
		default:
			return ""
		}
	}
	if b.Len() != length {
		return ""
	}
	return b.String()
}

// CodeHash binds a code to its conversation: the same digits typed in
// another conversation hash differently.
func CodeHash(key Key, code string) string {
	h := sha256.New()
	h.Write([]byte("stepup-code\x00"))
	h.Write([]byte(key.Brand))
	h.Write([]byte{0})
	h.Write([]byte(key.Conversation))
	h.Write([]byte{0})
	h.Write([]byte(code))
	return hex.EncodeToString(h.Sum(nil))
}

// EqualSecret compares two secrets in constant time.
func EqualSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
