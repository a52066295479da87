package standard_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// vector is test-vector.json: the official libraries' Go test vector.
type vector struct {
	Secret    string `json:"secret"`
	ID        string `json:"webhook-id"`
	Timestamp string `json:"webhook-timestamp"`
	Body      string `json:"raw_body"`
	Signature string `json:"webhook-signature"`
}

const vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

func readVector(t *testing.T, path string) vector {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s not present", path)
	}
	require.NoError(t, err)
	var v vector
	require.NoError(t, json.Unmarshal(b, &v))
	return v
}

func TestOfficialVector(t *testing.T) {
	for _, path := range []string{
		"testdata/test-vector.json", // a copy kept with the package
		"../../../shared/reference/samples/standard-webhooks/test-vector.json",
	} {
		t.Run(path, func(t *testing.T) {
			v := readVector(t, path)
			require.Equal(t, vectorSignature, v.Signature)
			key, err := standard.ParseSecret(v.Secret)
			require.NoError(t, err)
			unix, err := strconv.ParseInt(v.Timestamp, 10, 64)
			require.NoError(t, err)
			ts := time.Unix(unix, 0)

			assert.Equal(t, vectorSignature, standard.Sign(key, v.ID, ts, []byte(v.Body)))

			h := http.Header{}
			h.Set("webhook-id", v.ID)
			h.Set("webhook-timestamp", v.Timestamp)
			h.Set("webhook-signature", v.Signature)
			id, err := standard.Verify([][]byte{key}, h, []byte(v.Body), ts.Add(time.Minute), 0)
			require.NoError(t, err)
			assert.Equal(t, v.ID, id)
		})
	}
}

func mustSecret(t testing.TB, s string) []byte {
	t.Helper()
	k, err := standard.ParseSecret(s)
	require.NoError(t, err)
	return k
}

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	secretC = "whsec_YSB0aGlyZCBzZWNyZXQsIG5ldmVyIGNvbmZpZ3VyZWQ=" // configured nowhere
)

func TestVerify(t *testing.T) {
	keyA, keyB := mustSecret(t, secretA), mustSecret(t, secretB)
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"conversation.started","data":{"conversation_id":"c1"}}`)
	signed := func(key []byte, ts time.Time) http.Header {
		h := http.Header{}
		standard.SignHeader(h, key, "msg_1", ts, body)
		return h
	}
	with := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
		return h
	}
	good := signed(keyA, now)
	goodSig := good.Get("webhook-signature")

	cases := []struct {
		name    string
		secrets [][]byte
		header  http.Header
		body    []byte
		want    error // nil = valid
	}{
		{"valid", [][]byte{keyA}, good, body, nil},
		{"forged (other secret)", [][]byte{keyA}, signed(keyB, now), body, standard.ErrBadSignature},
		{"tampered body", [][]byte{keyA}, good, append([]byte(nil), append(body, ' ')...), standard.ErrBadSignature},
		{"tampered id", [][]byte{keyA}, with(good, "webhook-id", "msg_2"), body, standard.ErrBadSignature},
		{"tampered timestamp", [][]byte{keyA}, with(good, "webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10)), body, standard.ErrBadSignature},
		{"absent signature", [][]byte{keyA}, with(good, "webhook-signature", ""), body, standard.ErrMissingHeader},
		{"absent id", [][]byte{keyA}, with(good, "webhook-id", ""), body, standard.ErrMissingHeader},
		{"absent timestamp", [][]byte{keyA}, with(good, "webhook-timestamp", ""), body, standard.ErrMissingHeader},
		{"stale", [][]byte{keyA}, signed(keyA, now.Add(-6*time.Minute)), body, standard.ErrTimestampTooOld},
		{"future", [][]byte{keyA}, signed(keyA, now.Add(6*time.Minute)), body, standard.ErrTimestampTooNew},
		{"edge of window", [][]byte{keyA}, signed(keyA, now.Add(-5*time.Minute)), body, nil},
		{"timestamp in ms, signed", [][]byte{keyA}, signed(keyA, time.Unix(now.UnixMilli(), 0)), body, standard.ErrTimestampTooNew},
		{"timestamp not canonical", [][]byte{keyA}, with(good, "webhook-timestamp", "+"+strconv.FormatInt(now.Unix(), 10)), body, standard.ErrBadTimestamp},
		{"timestamp ISO", [][]byte{keyA}, with(good, "webhook-timestamp", now.Format(time.RFC3339)), body, standard.ErrBadTimestamp},
		{"rotation: second secret signs", [][]byte{keyA, keyB}, signed(keyB, now), body, nil},
		{"rotation: old and new signatures", [][]byte{keyB}, with(good, "webhook-signature", goodSig+" "+signed(keyB, now).Get("webhook-signature")), body, nil},
		{"unknown version ignored", [][]byte{keyA}, with(good, "webhook-signature", "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== "+goodSig), body, nil},
		{"only unknown version", [][]byte{keyA}, with(good, "webhook-signature", "v2,"+goodSig[3:]), body, standard.ErrBadSignature},
		{"bad base64 entry ignored", [][]byte{keyA}, with(good, "webhook-signature", "v1,!!! "+goodSig), body, nil},
		{"good entry, then garbage", [][]byte{keyA}, with(good, "webhook-signature", goodSig+" v1,!!! v1,AAAA"), body, nil},
		{"oversized entry ignored", [][]byte{keyA}, with(good, "webhook-signature", "v1,"+strings.Repeat("A", 4096)+" "+goodSig), body, nil},
		{"only an oversized entry", [][]byte{keyA}, with(good, "webhook-signature", goodSig+strings.Repeat("A", 4096)), body, standard.ErrBadSignature},
		{"signature without version", [][]byte{keyA}, with(good, "webhook-signature", goodSig[3:]), body, standard.ErrBadSignature},
		{"truncated signature", [][]byte{keyA}, with(good, "webhook-signature", goodSig[:20]), body, standard.ErrBadSignature},
		{"no secrets", nil, good, body, standard.ErrNoSecret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := standard.Verify(tc.secrets, tc.header, tc.body, now, 5*time.Minute)
			if tc.want == nil {
				require.NoError(t, err)
				assert.Equal(t, "msg_1", id)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, bridge.ErrUnauthenticated)
			assert.ErrorIs(t, err, tc.want)
			assert.Empty(t, id)
		})
	}
}

func TestVerifyStaleVersusForged(t *testing.T) {
	// A forged stale request learns only that the signature is bad.
	keyA, keyB := mustSecret(t, secretA), mustSecret(t, secretB)
	now := time.Unix(1_700_000_000, 0)
	h := http.Header{}
	standard.SignHeader(h, keyB, "msg_1", now.Add(-time.Hour), []byte("{}"))
	_, err := standard.Verify([][]byte{keyA}, h, []byte("{}"), now, 0)
	assert.ErrorIs(t, err, standard.ErrBadSignature)
	assert.NotErrorIs(t, err, standard.ErrTimestampTooOld)

	_, err = standard.Verify([][]byte{keyB}, h, []byte("{}"), now, 0)
	assert.ErrorIs(t, err, standard.ErrTimestampTooOld)
	assert.Contains(t, err.Error(), "too old")
}

func TestParseSecret(t *testing.T) {
	key, err := standard.ParseSecret(secretA)
	require.NoError(t, err)
	assert.Len(t, key, 24)
	k2, err := standard.ParseSecret(secretA[len("whsec_"):])
	require.NoError(t, err, "the prefix may be omitted")
	assert.Equal(t, key, k2)

	for _, bad := range []string{"", "whsec_", "whsec_not base64!", "whsec_c2hvcnQ=", "whsec_" + "AAAA"} {
		_, err := standard.ParseSecret(bad)
		assert.Error(t, err, bad)
		if err != nil && len(bad) > 6 {
			assert.NotContains(t, err.Error(), bad[6:], "the error must not echo the secret")
		}
	}
}
