package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/devidp"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
)

// stepper runs whole step-ups the way a platform, a consumer's browser and
// the development IdP do: conversation started → agent /verify → the link
// arrives at the brand endpoint → login page → POST → IdP → sample user →
// callback → (confirm-code: the code typed in the conversation) → every
// outbox effect delivered to the endpoint.
type stepper struct {
	s       *sender // webhooks
	browser *http.Client
	ep      *endpoint
	bridge  string // base URL
	prefix  string
	n       atomic.Int64
}

var (
	requestRe = regexp.MustCompile(`name="request" value="([^"]+)"`)
	codeRe    = regexp.MustCompile(`aria-label="Your code">([0-9 ]+)<`)
	linkRe    = regexp.MustCompile(`https?://\S+/login/\S+`)
)

// The effects a step-up delivers with the generated policy (notify_agents
// true, consumer_message set, no skill).
var stepUpEffects = []string{standard.TypeIdentityAttach, standard.TypeAgentsNotify, standard.TypeMessagePost}

// flowTimes is one completed step-up.
type flowTimes struct {
	total time.Duration // /verify sent → last effect delivered
	// fromCallback: callback request sent → last effect delivered (binding
	// none: the "step-up completion"); fromCode: confirm-code
	// message sent → last effect delivered (binding confirm-code).
	fromCallback time.Duration
	fromCode     time.Duration
}

func (st *stepper) one(ctx context.Context, brand string, confirmCode bool) (flowTimes, error) {
	var ft flowTimes
	cid := fmt.Sprintf("%s-su%d", st.prefix, st.n.Add(1))
	ch := st.ep.watchConv(cid)
	defer st.ep.unwatch(cid)
	hook := func(kind, text string) error {
		r := single(brand, fmt.Sprintf("%s-%s-%d", cid, kind, time.Now().UnixNano()), kind, cid, text, time.Now())
		code, body, err := st.s.send(ctx, r)
		if err != nil {
			return fmt.Errorf("%s webhook: %w", kind, err)
		}
		if code != http.StatusOK {
			return fmt.Errorf("%s webhook: %d %s", kind, code, body)
		}
		return nil
	}
	if err := hook(kindStarted, ""); err != nil {
		return ft, err
	}
	start := time.Now()
	if err := hook(kindVerify, ""); err != nil {
		return ft, err
	}
	post, err := await(ctx, ch, standard.TypeMessagePost, 10*time.Second)
	if err != nil {
		return ft, fmt.Errorf("login link at the endpoint: %w", err)
	}
	link := linkRe.FindString(post.text)
	if link == "" {
		return ft, fmt.Errorf("no login link in %q", post.text)
	}

	// The browser: preview page, then the POST that starts the login.
	if _, _, err := st.get(ctx, link, nil, http.StatusOK); err != nil {
		return ft, fmt.Errorf("login page: %w", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, link, nil)
	req.Header.Set("Origin", st.bridge)
	resp, err := st.browser.Do(req)
	if err != nil {
		return ft, fmt.Errorf("login start: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return ft, fmt.Errorf("login start: status %d", resp.StatusCode)
	}
	authURL := resp.Header.Get("Location")
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-stepup_login" {
			cookie = c
		}
	}
	if cookie == nil {
		return ft, fmt.Errorf("login start: no transaction cookie")
	}

	// The IdP: its sign-in page, then the first sample user.
	_, page, err := st.get(ctx, authURL, nil, http.StatusOK)
	if err != nil {
		return ft, fmt.Errorf("idp authorize: %w", err)
	}
	m := requestRe.FindStringSubmatch(page)
	if m == nil {
		return ft, fmt.Errorf("idp page without request id")
	}
	au, _ := url.Parse(authURL)
	form := url.Values{"request": {m[1]}, "user": {devidp.SampleUsers[0].Subject}}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, au.Scheme+"://"+au.Host+"/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = st.browser.Do(req)
	if err != nil {
		return ft, fmt.Errorf("idp decide: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || callback == "" {
		return ft, fmt.Errorf("idp decide: status %d", resp.StatusCode)
	}

	// Back at the bridge: code exchange, ID token verified, login bound.
	cbStart := time.Now()
	_, page, err = st.get(ctx, callback, cookie, http.StatusOK)
	if err != nil {
		return ft, fmt.Errorf("callback: %w", err)
	}
	var codeStart time.Time
	if confirmCode {
		m := codeRe.FindStringSubmatch(page)
		if m == nil {
			return ft, fmt.Errorf("callback page without a code")
		}
		codeStart = time.Now()
		if err := hook(kindCode, m[1]); err != nil {
			return ft, err
		}
	}
	want := map[string]bool{}
	for _, t := range stepUpEffects {
		want[t] = true
	}
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	var last time.Time
	for len(want) > 0 {
		select {
		case <-ctx.Done():
			return ft, ctx.Err()
		case <-deadline.C:
			return ft, fmt.Errorf("step-up effects not delivered within 10s; missing %v", sortedKeys(want))
		case c := <-ch:
			if want[c.typ] {
				delete(want, c.typ)
				last = c.at
			}
		}
	}
	ft.total = last.Sub(start)
	ft.fromCallback = last.Sub(cbStart)
	if confirmCode {
		ft.fromCode = last.Sub(codeStart)
	}
	return ft, nil
}

func (st *stepper) get(ctx context.Context, u string, cookie *http.Cookie, want int) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	if cookie != nil {
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	resp, err := st.browser.Do(req)
	if err != nil {
		return 0, "", err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != want {
		return resp.StatusCode, string(b), fmt.Errorf("GET %s: status %d", redactPath(u), resp.StatusCode)
	}
	return resp.StatusCode, string(b), nil
}

// redactPath keeps tickets and codes out of error messages.
func redactPath(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(url)"
	}
	return p.Scheme + "://" + p.Host + "/…"
}

// stepUpResult summarises the flows of a phase.
type stepUpResult struct {
	Brand        string            `json:"brand"`
	Binding      string            `json:"binding"`
	Completed    int               `json:"completed"`
	Failed       int               `json:"failed"`
	Failures     map[string]int    `json:"failures,omitempty"`
	Total        summary           `json:"verify_to_effects"`
	FromCallback summary           `json:"callback_to_effects"`
	FromCode     *summary          `json:"code_to_effects,omitempty"`
	Extra        map[string]string `json:"extra,omitempty"`
}

// runStepUps runs n flows on brand with conc at a time.
func (st *stepper) runStepUps(ctx context.Context, brand string, confirmCode bool, n, conc int) stepUpResult {
	binding := "none"
	if confirmCode {
		binding = "confirm-code"
	}
	res := stepUpResult{Brand: brand, Binding: binding, Failures: map[string]int{}}
	var mu sync.Mutex
	total, cb, code := newHist(), newHist(), newHist()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(conc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				ft, err := st.one(ctx, brand, confirmCode)
				mu.Lock()
				if err != nil {
					res.Failed++
					res.Failures[err.Error()]++
				} else {
					res.Completed++
					total.record(ft.total)
					cb.record(ft.fromCallback)
					if confirmCode {
						code.record(ft.fromCode)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Total, res.FromCallback = total.summary(), cb.summary()
	if confirmCode {
		s := code.summary()
		res.FromCode = &s
	}
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	return res
}
