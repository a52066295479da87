// Package standard is the Standard Webhooks platform adapter
// (https://www.standardwebhooks.com): for any platform or brand system that
// sends its conversation events as Standard Webhooks and receives the
// bridge's step-up calls the same way. README.md documents the event
// schema, which is part of the public contract.
//
// Inbound, the adapter verifies webhook-id / webhook-timestamp /
// webhook-signature on the raw body (HMAC-SHA256 "v1", several secrets for
// rotation, a replay window) and only then parses the JSON. Outbound, it
// POSTs one signed stepup.* event per outbox entry to the brand's endpoint,
// with the entry ID as webhook-id (the idempotency key, stable across
// retries) and a fresh webhook-timestamp and signature on every attempt.
package standard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/stepup-bridge/stepup-bridge/adapters/outbound"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// Type is the platform type name in the configuration.
const Type = "standard"

// DefaultCallTimeout bounds one Deliver, retries included.
const DefaultCallTimeout = 30 * time.Second

// ErrNoEndpoint is returned (marked permanent) by Deliver when the platform
// has no endpoint configured.
var ErrNoEndpoint = errors.New("standard: no endpoint configured: set endpoint and endpoint_secret to receive stepup.* events")

var _ bridge.Platform = (*Adapter)(nil)

// Options are the adapter's collaborators.
type Options struct {
	// Client makes the outbound calls. nil builds one with
	// outbound.NewClient(Outbound, with Logger).
	Client *retryablehttp.Client
	// Outbound tunes the client built when Client is nil.
	Outbound outbound.Options
	// Logger for configuration warnings and the outbound client. nil: discard.
	Logger *slog.Logger
	// Clock for the replay window and outbound timestamps. nil: system clock.
	Clock bridge.Clock
	// CallTimeout bounds one Deliver, retries included. Default DefaultCallTimeout.
	CallTimeout time.Duration
}

// Adapter is the Standard Webhooks platform of one brand. It is immutable
// and safe for concurrent use.
type Adapter struct {
	secrets        keyring
	tolerance      time.Duration
	endpoint       string
	endpointSecret []byte
	client         *retryablehttp.Client
	clock          bridge.Clock
	callTimeout    time.Duration
}

// New checks the configuration and builds the adapter. Its error lists
// every problem, each with its key; secret values never appear in it.
func New(cfg config.StandardPlatform, opts Options) (*Adapter, error) {
	a := &Adapter{
		tolerance:   cfg.Tolerance,
		clock:       opts.Clock,
		client:      opts.Client,
		callTimeout: opts.CallTimeout,
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	var keys [][]byte
	if len(cfg.WebhookSecrets) == 0 {
		errs = append(errs, errors.New("webhook_secrets: at least one secret is required"))
	}
	for i, s := range cfg.WebhookSecrets {
		key, err := ParseSecret(s.Value)
		if err != nil {
			errs = append(errs, fmt.Errorf("webhook_secrets[%d]: %w", i, err))
			continue
		}
		keys = append(keys, key)
	}
	a.secrets = newKeyring(keys)
	if cfg.Tolerance < 0 {
		errs = append(errs, errors.New("tolerance: must not be negative"))
	}
	if a.tolerance <= 0 {
		a.tolerance = DefaultTolerance
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		switch {
		case err != nil:
			errs = append(errs, errors.New("endpoint: not a URL"))
		case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
			errs = append(errs, fmt.Errorf("endpoint: must be an absolute http(s) URL, got %s", outbound.RedactURL(u)))
		default:
			if u.Scheme == "http" && !isLoopback(u.Hostname()) {
				log.Warn("standard: endpoint is plain http: events carry personal data and should use https",
					"endpoint", outbound.RedactURL(u))
			}
			a.endpoint = cfg.Endpoint
		}
		if cfg.EndpointSecret.Value == "" {
			errs = append(errs, errors.New("endpoint_secret: required when endpoint is set"))
		} else if key, err := ParseSecret(cfg.EndpointSecret.Value); err != nil {
			errs = append(errs, fmt.Errorf("endpoint_secret: %w", err))
		} else {
			a.endpointSecret = key
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("standard platform: %w", err)
	}
	if a.clock == nil {
		a.clock = bridge.SystemClock{}
	}
	if a.callTimeout <= 0 {
		a.callTimeout = DefaultCallTimeout
	}
	if a.client == nil {
		o := opts.Outbound
		if o.Logger == nil {
			o.Logger = opts.Logger
		}
		a.client = outbound.NewClient(o)
	}
	return a, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseWebhook verifies the request on its raw body, then parses the event.
// A verified event of a type the bridge does not use gives no events and no
// error. Errors wrap bridge.ErrUnauthenticated (and one of ErrMissingHeader,
// ErrBadTimestamp, ErrBadSignature, ErrTimestampTooOld, ErrTimestampTooNew)
// or bridge.ErrMalformed with the JSON path at fault.
func (a *Adapter) ParseWebhook(_ context.Context, req bridge.WebhookRequest) ([]bridge.Event, error) {
	id, err := verify(a.secrets, req.Header, req.Body, a.clock.Now(), a.tolerance)
	if err != nil {
		return nil, fmt.Errorf("standard webhook: %w", err)
	}
	ts, _ := strconv.ParseInt(req.Header.Get(canonicalTimestamp), 10, 64) // checked by Verify
	events, err := parseEvent(id, req.Body, time.Unix(ts, 0))
	if err != nil {
		return nil, fmt.Errorf("standard webhook: %w", err)
	}
	return events, nil
}

// Deliver POSTs the entry's stepup.* event to the endpoint, signed with the
// endpoint secret; any 2xx is success. Errors are marked bridge.Permanent
// when retrying cannot help (no endpoint, an entry that cannot be rendered,
// a 4xx other than 408/425/429); everything else is for the outbox to retry.
func (a *Adapter) Deliver(ctx context.Context, e bridge.OutboxEntry) error {
	if a.endpoint == "" {
		return bridge.Permanent(ErrNoEndpoint)
	}
	fail := func(err error) error { return fmt.Errorf("standard: deliver %s %s: %w", e.Effect, e.ID, err) }
	if e.ID == "" || len(e.ID) > MaxIDBytes || strings.ContainsFunc(e.ID, func(r rune) bool { return r > unicode.MaxASCII || unicode.IsControl(r) }) {
		return bridge.Permanent(fail(errors.New("entry id must be 1 to 256 printable ASCII characters (it is the webhook-id)")))
	}
	body, err := buildBody(e, a.clock.Now())
	if err != nil {
		return bridge.Permanent(fail(err))
	}

	ctx, cancel := context.WithTimeout(ctx, a.callTimeout)
	defer cancel()
	// A fresh webhook-timestamp and signature on every attempt.
	ctx = outbound.WithAttemptHook(ctx, func(r *http.Request) error {
		SignHeader(r.Header, a.endpointSecret, e.ID, a.clock.Now(), body)
		return nil
	})
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, a.endpoint, body)
	if err != nil {
		return bridge.Permanent(fail(errors.New("cannot build request")))
	}
	req.Header.Set("Content-Type", "application/json")
	// Signed here too, for a client not built by outbound.NewClient.
	SignHeader(req.Header, a.endpointSecret, e.ID, a.clock.Now(), body)

	resp, err := outbound.Do(a.client, req)
	if err != nil {
		return fail(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return nil
}
