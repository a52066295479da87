// Package httpapi is the HTTP side of the bridge: the gin router with its
// middleware (request id, recovery, access log, metrics, body limits), the
// webhook, login and API handlers, and the consumer-facing pages. Handlers
// stay thin: raw body → one call into bridge.Service → map the error.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry"
)

//go:embed web
var webFS embed.FS

// Options configure the router.
type Options struct {
	Service   *bridge.Service
	Logger    *slog.Logger
	Metrics   *telemetry.Metrics
	PublicURL string
	// APIKeys per brand; any of them authenticates /api/v1/brands/{brand}/...
	APIKeys        map[string][]string
	MaxBodyBytes   int64
	TrustedProxies []string
	Clock          bridge.Clock
}

// CookieName holds the login transaction; __Host- pins it to this host,
// path / and Secure.
const CookieName = "__Host-stepup_login"

type server struct {
	svc       *bridge.Service
	log       *slog.Logger
	metrics   *telemetry.Metrics
	publicURL *url.URL
	origin    string // publicURL's scheme://host
	apiKeys   map[string][][32]byte
	maxBody   int64
	clock     bridge.Clock
	pages     *template.Template
}

// New builds the router.
func New(o Options) (*gin.Engine, error) {
	pu, err := url.Parse(o.PublicURL)
	if err != nil || pu.Scheme == "" || pu.Host == "" {
		return nil, fmt.Errorf("httpapi: public URL %q is not absolute", o.PublicURL)
	}
	pages, err := template.New("").Funcs(template.FuncMap{
		"when": func(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") },
		"mins": func(d time.Duration) int { return int(d.Round(time.Minute).Minutes()) },
		"spaced": func(code string) string {
			if len(code) == 6 {
				return code[:3] + " " + code[3:]
			}
			return code
		},
	}).ParseFS(webFS, "web/*.html")
	if err != nil {
		return nil, fmt.Errorf("httpapi: pages: %w", err)
	}
	s := &server{svc: o.Service, log: o.Logger, metrics: o.Metrics, publicURL: pu, origin: pu.Scheme + "://" + pu.Host, maxBody: o.MaxBodyBytes, clock: o.Clock, pages: pages, apiKeys: map[string][][32]byte{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = telemetry.NewMetrics()
	}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	if s.clock == nil {
		s.clock = bridge.SystemClock{}
	}
	for brand, keys := range o.APIKeys {
		for _, k := range keys {
			// Digests compare in constant time whatever the key lengths.
			s.apiKeys[brand] = append(s.apiKeys[brand], sha256.Sum256([]byte(k)))
		}
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.ContextWithFallback = true
	if err := r.SetTrustedProxies(o.TrustedProxies); err != nil {
		return nil, fmt.Errorf("httpapi: trusted proxies: %w", err)
	}
	r.HandleMethodNotAllowed = true
	r.Use(s.requestID, s.recovery, s.accessLog)
	r.NoRoute(func(c *gin.Context) { c.JSON(http.StatusNotFound, errBody("not found")) })
	r.NoMethod(func(c *gin.Context) { c.JSON(http.StatusMethodNotAllowed, errBody("method not allowed")) })

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})))
	r.GET("/assets/style.css", s.stylesheet)

	r.POST("/webhooks/:brand/:platform", s.webhook)
	r.POST("/idp/:brand/:provider", s.idpEvent)    // login events (idp.go)
	r.GET("/idp/:brand/:provider", s.idpChallenge) // one-time verification (Okta)

	r.GET("/login/:brand/:ticket", s.loginPage)
	r.POST("/login/:brand/:ticket", s.loginStart)
	r.GET("/callback/:brand", s.callback)

	r.POST("/token/:brand", func(c *gin.Context) { s.svc.ServeToken(c.Writer, c.Request, c.Param("brand")) })
	r.GET("/jwks/:brand", func(c *gin.Context) { s.svc.ServeJWKS(c.Writer, c.Request, c.Param("brand")) })

	api := r.Group("/api/v1/brands/:brand", s.apiAuth)
	api.POST("/conversations/:conversation/login-links", s.createLink)
	api.GET("/conversations/:conversation", s.status)
	return r, nil
}

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,64}$`)

// requestID accepts a sane incoming X-Request-Id or makes one, and puts a
// logger carrying it in the context.
func (s *server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !requestIDRe.MatchString(id) {
		id = bridge.RandomString(12)
	}
	c.Header("X-Request-Id", id)
	// Every log line written with the request's context, in the service
	// too, carries the id.
	c.Request = c.Request.WithContext(telemetry.WithRequestID(c.Request.Context(), id))
	c.Next()
}

func (s *server) logger(c *gin.Context) *slog.Logger {
	return s.log.With("request_id", telemetry.RequestID(c.Request.Context()))
}

func (s *server) recovery(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(p)
			}
			s.logger(c).Error("panic in handler", "route", c.FullPath(), "panic", fmt.Sprint(p))
			c.AbortWithStatusJSON(http.StatusInternalServerError, errBody("internal error"))
		}
	}()
	c.Next()
}

// accessLog logs the route template, never the raw path: login paths carry
// bearer tickets.
func (s *server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	d := time.Since(start)
	code := c.Writer.Status()
	s.metrics.HTTPRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	s.metrics.HTTPDuration.WithLabelValues(route).Observe(d.Seconds())
	if route == "/healthz" || route == "/metrics" || route == "/readyz" {
		return
	}
	level := slog.LevelInfo
	if code >= 500 {
		level = slog.LevelError
	}
	// Straight to the handler, typed attributes: the same line without a
	// runtime.Callers for a source nobody logs (a tenth of the line's cost)
	// or boxing each value into an any.
	ctx := c.Request.Context()
	if h := s.log.Handler(); h.Enabled(ctx, level) {
		r := slog.NewRecord(time.Now(), level, "http request", 0)
		r.AddAttrs(slog.String("method", c.Request.Method), slog.String("route", route), slog.Int("status", code),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("brand", c.Param("brand")))
		_ = h.Handle(ctx, r) // as slog.Logger does: a line that cannot be written is dropped
	}
}

func errBody(msg string) gin.H { return gin.H{"error": msg} }

// readBody reads the raw body under the size limit; on failure it has
// already answered.
func (s *server) readBody(c *gin.Context) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, errBody(fmt.Sprintf("body larger than %d bytes", s.maxBody)))
			return nil, false
		}
		c.AbortWithStatusJSON(http.StatusBadRequest, errBody("could not read body"))
		return nil, false
	}
	return body, true
}

// status maps domain errors to HTTP statuses: the one place this happens.
func status(err error) (int, string) {
	switch {
	case errors.Is(err, bridge.ErrUnknownBrand):
		return http.StatusNotFound, "unknown brand"
	case errors.Is(err, bridge.ErrUnknownPlatform):
		return http.StatusNotFound, "platform not configured for this brand"
	case errors.Is(err, bridge.ErrNotFound):
		return http.StatusNotFound, "conversation not known to the bridge"
	case errors.Is(err, bridge.ErrUnauthenticated):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, bridge.ErrMalformed):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, bridge.ErrTicketInvalid):
		return http.StatusGone, bridge.ErrTicketInvalid.Error()
	case errors.Is(err, bridge.ErrLoginInvalid):
		return http.StatusBadRequest, bridge.ErrLoginInvalid.Error()
	case errors.Is(err, bridge.ErrIdPUnavailable):
		return http.StatusServiceUnavailable, bridge.ErrIdPUnavailable.Error()
	case errors.Is(err, bridge.ErrLoginRejected):
		return http.StatusForbidden, bridge.ErrLoginRejected.Error()
	case errors.Is(err, bridge.ErrClosed), errors.Is(err, bridge.ErrAlreadySteppedUp), errors.Is(err, bridge.ErrBoundElsewhere):
		return http.StatusConflict, err.Error()
	case errors.Is(err, bridge.ErrTooManyLinks):
		return http.StatusTooManyRequests, err.Error()
	case errors.Is(err, bridge.ErrChannelRefused):
		return http.StatusUnprocessableEntity, err.Error()
	default:
		// Store down or anything unexpected: "retry later", never "200 and drop".
		return http.StatusServiceUnavailable, "temporarily unavailable, retry later"
	}
}

func (s *server) fail(c *gin.Context, err error) {
	code, msg := status(err)
	if code == http.StatusServiceUnavailable {
		c.Header("Retry-After", "5")
		s.logger(c).Error("request failed", "route", c.FullPath(), "error", err)
	} else if code >= 400 {
		s.logger(c).Info("request refused", "route", c.FullPath(), "status", code, "error", err)
	}
	c.AbortWithStatusJSON(code, errBody(msg))
}

func (s *server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.svc.Ready(ctx); err != nil {
		s.logger(c).Warn("not ready", "error", err)
		// The detail (addresses, issuer URLs) stays in the log.
		reason := "not ready"
		var nr *bridge.NotReadyError
		if errors.As(err, &nr) {
			reason = nr.Component + " not ready"
		}
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "reason": reason})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// webhookReply appends the webhook's answer: the bytes gin.H{"status":
// "ok", "events": n, "duplicates": m} encodes to (keys sorted), without a
// map or a reflection pass per request (both on every event's path).
func webhookReply(b []byte, res bridge.WebhookResult) []byte {
	b = append(b, `{"duplicates":`...)
	b = strconv.AppendInt(b, int64(res.Duplicates), 10)
	b = append(b, `,"events":`...)
	b = strconv.AppendInt(b, int64(res.Events), 10)
	return append(b, `,"status":"ok"}`...)
}

// inboundRequest is a platform's or an IdP's call as the service takes it.
func (s *server) inboundRequest(c *gin.Context, body []byte) bridge.WebhookRequest {
	return bridge.WebhookRequest{
		Header: c.Request.Header, Body: body, Received: s.clock.Now(),
		Origin: s.origin, Target: c.Request.URL.RequestURI(),
	}
}

func (s *server) webhook(c *gin.Context) {
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	res, err := s.svc.HandleWebhook(c.Request.Context(), c.Param("brand"), c.Param("platform"), s.inboundRequest(c, body))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", webhookReply(make([]byte, 0, 64), res))
}

// apiAuth checks the brand's API key (Authorization: Bearer KEY) in
// constant time; a key of brand A never authenticates brand B.
func (s *server) apiAuth(c *gin.Context) {
	brand := c.Param("brand")
	if _, err := s.svc.Brand(brand); err != nil {
		s.fail(c, err)
		return
	}
	const prefix = "Bearer "
	h := c.GetHeader("Authorization")
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		c.Header("WWW-Authenticate", `Bearer realm="stepup-bridge"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, errBody("missing API key (Authorization: Bearer ...)"))
		return
	}
	got := sha256.Sum256([]byte(h[len(prefix):]))
	match := 0
	for _, k := range s.apiKeys[brand] {
		match |= subtle.ConstantTimeCompare(got[:], k[:])
	}
	if match != 1 {
		c.Header("WWW-Authenticate", `Bearer realm="stepup-bridge", error="invalid_token"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, errBody("invalid API key for this brand"))
		return
	}
	c.Next()
}

type linkRequest struct {
	// Post asks the bridge to send the link to the consumer in the conversation.
	Post bool `json:"post"`
}

func (s *server) createLink(c *gin.Context) {
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	var req linkRequest
	if len(body) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			c.AbortWithStatusJSON(http.StatusBadRequest, errBody("malformed JSON body: "+err.Error()))
			return
		}
	}
	link, err := s.svc.RequestLink(c.Request.Context(), c.Param("brand"), c.Param("conversation"), req.Post)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, link)
}

func (s *server) status(c *gin.Context) {
	sess, err := s.svc.Status(c.Request.Context(), c.Param("brand"), c.Param("conversation"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, statusView(sess, s.clock.Now()))
}

// statusView is the API's view of a session: no hashes, no pending identity.
func statusView(s bridge.Session, now time.Time) gin.H {
	v := gin.H{
		"brand": s.Brand, "conversation": s.Conversation, "platform": s.Platform, "channel": s.Channel,
		"state": s.Effective(now), "started_at": s.StartedAt, "updated_at": s.UpdatedAt, "links_issued": s.LinksIssued,
		"stepped_up": s.State == bridge.StateSteppedUp,
	}
	if s.State == bridge.StateLinkIssued && s.TicketHash == "" {
		// The consumer opened the link (it is single use): a login is under
		// way at the IdP, or was abandoned there. A new link is needed then.
		v["link_opened"] = true
	}
	if s.Identity != nil {
		v["identity"] = s.Identity
		v["stepped_up_at"] = s.SteppedUpAt
	}
	return v
}
