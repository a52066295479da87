package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

func (s *server) stylesheet(c *gin.Context) {
	css, _ := webFS.ReadFile("web/style.css")
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, "text/css; charset=utf-8", css)
}

// page renders a consumer-facing page with the security headers every one
// of them carries. formAction lists origins a form on the page may lead to
// (CSP form-action also governs the redirect after the POST).
func (s *server) page(c *gin.Context, code int, name string, data gin.H, formAction ...string) {
	fa := "'self'"
	for _, o := range formAction {
		fa += " " + o
	}
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action "+fa+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Type", "text/html; charset=utf-8")
	c.Status(code)
	if data == nil {
		data = gin.H{}
	}
	data["Page"] = name
	if err := s.pages.ExecuteTemplate(c.Writer, name+".html", data); err != nil {
		s.logger(c).Error("render page", "page", name, "error", err)
	}
	c.Abort()
}

// errorPage shows the consumer what went wrong and what to do next.
func (s *server) errorPage(c *gin.Context, err error) {
	code, _ := status(err)
	kind := "unavailable"
	switch {
	case errors.Is(err, bridge.ErrUnknownBrand):
		kind = "not_found"
	case errors.Is(err, bridge.ErrTicketInvalid):
		kind = "expired"
	case errors.Is(err, bridge.ErrLoginInvalid):
		kind = "restart"
	case errors.Is(err, bridge.ErrIdPUnavailable):
		kind = "idp_unavailable"
	case errors.Is(err, bridge.ErrLoginRejected):
		kind = "rejected"
	case errors.Is(err, bridge.ErrClosed):
		kind = "closed"
	case errors.Is(err, bridge.ErrAlreadySteppedUp):
		kind = "already"
	case errors.Is(err, bridge.ErrBoundElsewhere):
		kind = "bound"
	}
	if code == http.StatusServiceUnavailable {
		c.Header("Retry-After", "5")
		s.logger(c).Error("login page failed", "route", c.FullPath(), "error", err)
	}
	s.page(c, code, "error", gin.H{"Kind": kind})
}

// loginPage shows which conversation the link steps up before anything
// happens: a link-preview bot fetching the URL consumes nothing.
func (s *server) loginPage(c *gin.Context) {
	brand, ticket := c.Param("brand"), c.Param("ticket")
	sess, err := s.svc.PreviewLogin(c.Request.Context(), brand, ticket)
	if err != nil {
		s.errorPage(c, err)
		return
	}
	s.page(c, http.StatusOK, "start", gin.H{"Session": sess, "Action": "/login/" + url.PathEscape(brand) + "/" + url.PathEscape(ticket)}, s.idpOrigin(brand))
}

// idpOrigin is the origin of the brand's authorization endpoint, allowed
// as a form target so the POST's redirect to the IdP passes CSP.
func (s *server) idpOrigin(brand string) string {
	b, err := s.svc.Brand(brand)
	if err != nil {
		return ""
	}
	u, err := url.Parse(b.Identity.AuthURL("", "", ""))
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// sameOrigin refuses cross-site form posts (login CSRF). Fetch Metadata is
// set by the browser, never by a page, so Sec-Fetch-Site decides when
// present. It must: the start page is served with Referrer-Policy
// no-referrer, under which browsers send "Origin: null" on the page's own
// form post (Fetch, "append a request Origin header"). Without it, Origin
// must be ours; a request with neither is not from a browser form.
func (s *server) sameOrigin(c *gin.Context) bool {
	switch strings.ToLower(c.GetHeader("Sec-Fetch-Site")) {
	case "same-origin":
		return true
	case "same-site", "cross-site":
		return false
	}
	o := c.GetHeader("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && canonicalOrigin(u) == canonicalOrigin(s.publicURL)
}

// canonicalOrigin is scheme://host[:port] as browsers serialize it: lower
// case, default port omitted (public_url may say https://Bridge.example:443).
func canonicalOrigin(u *url.URL) string {
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if scheme == "" || host == "" {
		return "" // "null", or not an origin: matches nothing (see the caller)
	}
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		port = ""
	}
	if port != "" || strings.Contains(host, ":") {
		host = net.JoinHostPort(host, port)
		host = strings.TrimSuffix(host, ":") // IPv6 without a port: [::1]
	}
	return scheme + "://" + host
}

func (s *server) loginStart(c *gin.Context) {
	if !s.sameOrigin(c) {
		s.page(c, http.StatusForbidden, "error", gin.H{"Kind": "restart"})
		return
	}
	start, err := s.svc.StartLogin(c.Request.Context(), c.Param("brand"), c.Param("ticket"))
	if err != nil {
		s.errorPage(c, err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: CookieName, Value: start.TxnCookie, Path: "/", MaxAge: int(start.ExpiresAt.Sub(s.clock.Now()).Seconds()), // the injected clock, as the expiry
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	c.Header("Cache-Control", "no-store")
	c.Header("Referrer-Policy", "no-referrer")
	c.Redirect(http.StatusSeeOther, start.AuthURL)
}

func (s *server) callback(c *gin.Context) {
	brand := c.Param("brand")
	if _, err := s.svc.Brand(brand); err != nil {
		s.errorPage(c, err)
		return
	}
	cookie, err := c.Cookie(CookieName)
	if err != nil || cookie == "" {
		// state without its cookie: another browser, or a forged callback.
		s.page(c, http.StatusBadRequest, "error", gin.H{"Kind": "restart"})
		return
	}
	// The transaction is single use: the cookie goes whatever happens next.
	http.SetCookie(c.Writer, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	q := c.Request.URL.Query()
	res, err := s.svc.FinishLogin(c.Request.Context(), brand, cookie, bridge.Callback{State: q.Get("state"), Code: q.Get("code"), Iss: q.Get("iss"), Error: q.Get("error")})
	if err != nil {
		if errors.Is(err, bridge.ErrLoginRejected) && q.Get("error") == "access_denied" {
			s.page(c, http.StatusForbidden, "error", gin.H{"Kind": "cancelled"})
			return
		}
		s.errorPage(c, err)
		return
	}
	if res.SteppedUp {
		s.page(c, http.StatusOK, "success", gin.H{"Session": res.Session})
		return
	}
	s.page(c, http.StatusOK, "code", gin.H{"Session": res.Session, "Code": res.Code, "TTL": res.CodeTTL})
}
