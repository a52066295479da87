package main

// The browser tier: the demo's whole story in a real headless Chromium
// (Debian's chromium package, driven over the DevTools protocol by
// chromedp; nothing is downloaded). Skipped under -short. Without
// /usr/bin/chromium it fails, unless STEPUP_SKIP_BROWSER=1.
//
//	go test -race -run TestDemoBrowser -v ./cmd/stepup-bridge
//	STEPUP_BROWSER_ARTIFACTS=/tmp/shots ...  # keep the screenshots
//	STEPUP_UPDATE_DOCS=1 ...                 # also refresh deploy/docs/demo-after.png

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

const demoChromiumPath = "/usr/bin/chromium"

func demoBrowserAllocator(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tier: skipped under -short")
	}
	if os.Getenv("STEPUP_SKIP_BROWSER") == "1" {
		t.Skip("browser tier: STEPUP_SKIP_BROWSER=1")
	}
	if _, err := os.Stat(demoChromiumPath); err != nil {
		t.Fatalf("browser tier: %s is missing. Install Debian's chromium with `bash deploy/ensure-chromium.sh`, or set STEPUP_SKIP_BROWSER=1 to skip this tier.", demoChromiumPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], // headless, no first run, no background networking, …
		chromedp.ExecPath(demoChromiumPath),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	return alloc
}

func demoArtifactDir(t *testing.T) string {
	dir := os.Getenv("STEPUP_BROWSER_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one tab on the playground page.
type demoBrowser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

// demoStepTimeout bounds one batch of steps, so a stuck step fails fast.
const demoStepTimeout = 30 * time.Second

func (b *demoBrowser) run(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, demoStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func demoValue[T any](b *demoBrowser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, demoStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

// demoWaitJS waits until the JavaScript expression is true. It evaluates
// from Go rather than polling inside the page, so a navigation under way
// (a form post, a redirect) only means "not yet".
func demoWaitJS(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		eval := chromedp.Evaluate[bool]("!!(" + expr + ")")
		var last error
		for {
			ok, err := eval(ctx, t)
			if err == nil && ok {
				return chromedp.Void{}, nil
			}
			if err != nil {
				last = err
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, fmt.Errorf("waiting for %s: %w (last error: %v)", expr, ctx.Err(), last)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// demoTextIn waits until the element's text contains s.
func demoTextIn(sel, s string) chromedp.Action[chromedp.Void] {
	return demoWaitJS(fmt.Sprintf(`(document.querySelector(%q)?.innerText || "").includes(%q)`, sel, s))
}

func (b *demoBrowser) text(sel string) string {
	b.t.Helper()
	return demoValue(b, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
}

func (b *demoBrowser) eval(expr string) bool {
	b.t.Helper()
	return demoValue(b, chromedp.Evaluate[bool](expr))
}

func (b *demoBrowser) shot(sel, name string) {
	b.t.Helper()
	b.run(chromedp.ScrollIntoView(chromedp.CSS(sel)))
	png := demoValue(b, chromedp.Screenshot(chromedp.CSS(sel), chromedp.NodeVisible))
	if err := os.WriteFile(filepath.Join(b.dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *demoBrowser) say(pane, text string) {
	b.t.Helper()
	b.run(chromedp.SendKeys(chromedp.CSS("#"+pane+"-input"), text+kb.Enter))
}

// openConversation loads the page, which starts a new conversation.
func (b *demoBrowser) openConversation(url string) {
	b.t.Helper()
	b.run(chromedp.Navigate(url), demoWaitJS(`document.body.dataset.state === "anonymous"`))
}

// askToVerify uses the agent's button from the keyboard and waits for the
// n-th link to reach the consumer's chat.
func (b *demoBrowser) askToVerify(n int) string {
	b.t.Helper()
	b.run(chromedp.Focus(chromedp.CSS("#verify")), chromedp.KeyEvent(kb.Enter),
		demoWaitJS(fmt.Sprintf(`document.querySelectorAll('#consumer-messages a[href*="/login/demo/"]').length === %d`, n)))
	return demoValue(b, chromedp.Evaluate[string](`[...document.querySelectorAll('#consumer-messages a[href*="/login/demo/"]')].pop().href`))
}

// openLink clicks the newest login link in the consumer's chat; it opens in
// a new tab, which is returned.
func (b *demoBrowser) openLink() *demoBrowser {
	b.t.Helper()
	ch := chromedp.WaitNewTarget(b.ctx, func(i *target.Info) bool { return strings.Contains(i.URL, "/login/demo/") })
	b.run(chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#consumer-messages a[href*="/login/demo/"]')].pop().click()`))
	var id target.ID
	select {
	case id = <-ch:
	case <-time.After(20 * time.Second):
		b.t.Fatal("the login link did not open a tab")
	}
	tab, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id))
	b.t.Cleanup(cancel)
	// The first run attaches the tab; it must not carry a timeout, which
	// would end the tab with it.
	if err := chromedp.Do(tab); err != nil {
		b.t.Fatal(err)
	}
	return &demoBrowser{t: b.t, ctx: tab, dir: b.dir}
}

// close closes a tab the page opened, so the chat's tab is the visible one
// again (a hidden tab gets no frames: screenshots and rendering stall).
func (b *demoBrowser) close() {
	b.t.Helper()
	if err := chromedp.Cancel(b.ctx); err != nil {
		b.t.Fatal(err)
	}
}

// signIn goes from the bridge's start page through the development IdP,
// picking user ("" presses Cancel), and waits for the bridge's answer.
func (b *demoBrowser) signIn(user string) {
	b.t.Helper()
	b.run(chromedp.WaitVisible(chromedp.CSS("form button[type=submit]")), demoTextIn("h1", "Verify your identity"),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".banner")), demoTextIn(".banner", "DEVELOPMENT ONLY"), demoTextIn("main", "Alex Morgan"), demoTextIn("main", "C-1001"))
	b.shot("main", "idp-login.png")
	button := `button[name="cancel"]`
	if user != "" {
		button = fmt.Sprintf(`button[name="user"][value=%q]`, user)
	}
	b.run(chromedp.Focus(chromedp.CSS(button)), chromedp.KeyEvent(kb.Enter), demoWaitJS(`location.pathname.startsWith("/callback/")`), chromedp.WaitVisible(chromedp.CSS("h1")))
}

func TestDemoBrowser(t *testing.T) {
	alloc := demoBrowserAllocator(t)
	d := startTestDemo(t, "memory")
	dir := demoArtifactDir(t)
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	// The first run starts the browser; it must not carry a timeout, which
	// would stop the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("step-up", func(t *testing.T) {
		b := &demoBrowser{t: t, ctx: ctx, dir: dir}
		b.openConversation(d.URL)
		b.say("consumer", "Hi, I need to change the delivery address of my order.")
		b.run(demoTextIn("#agent-messages", "change the delivery address"))
		b.say("agent", "Happy to help! For your security I need to verify you first.")
		b.run(demoTextIn("#consumer-messages", "verify you first"))
		link := b.askToVerify(1)
		if !strings.HasPrefix(link, d.BridgeURL+"/login/demo/") {
			t.Fatalf("link %q", link)
		}
		b.run(demoTextIn("#timeline-list", "link issued"), demoTextIn("#agent-messages", "/verify"))
		if strings.Contains(b.text("#consumer-messages"), "/verify") {
			t.Error("the agent command is shown to the consumer")
		}
		b.shot("#consumer", "before-consumer.png")
		b.shot("#agent", "before-agent.png")

		tab := b.openLink()
		tab.signIn("u-1001")
		if h := tab.text("h1"); h != "One last step" {
			// "Please start again" here means the browser dropped the
			// __Host- Secure login cookie on http loopback.
			t.Fatalf("bridge callback page: %q: %s", h, tab.text("main"))
		}
		code := tab.text(".code")
		tab.shot("main", "code-page.png")
		tab.close()
		b.run(demoTextIn("#timeline-list", "Login verified"), demoTextIn("#bridge-state", "login verified"))

		b.say("consumer", code)
		b.run(demoWaitJS(`document.getElementById("agent-badge").getClientRects().length > 0`), demoTextIn("#id-customer", "C-1001"),
			demoTextIn("#consumer-messages", "you are now verified"), demoTextIn("#timeline-list", "stepup.agents.notify"))

		agent := b.text("#agent")
		for _, want := range []string{"Alex Morgan", "✓ Verified · stepped up", "Conversation stepped up", "C-1001", "alex.morgan@example.com",
			"Demo IdP (development only)", "password + one-time code", "Hi, I need to change the delivery address", "Stepped up: Alex Morgan (customer id C-1001)", "stepped up"} {
			if !strings.Contains(agent, want) {
				t.Errorf("agent pane lacks %q:\n%s", want, agent)
			}
		}
		consumer := b.text("#consumer")
		for _, want := range []string{"Verified as Alex Morgan", "Hi, I need to change the delivery address", "verify you first", "you are now verified", strings.TrimSpace(code)} {
			if !strings.Contains(consumer, want) {
				t.Errorf("consumer pane lacks %q:\n%s", want, consumer)
			}
		}
		if strings.Contains(consumer, "Stepped up: Alex Morgan") {
			t.Error("the agent-only note is shown to the consumer")
		}
		timeline := b.text("#timeline-list")
		for _, want := range []string{"webhook received", "link issued", "login verified", "code matched", "platform call delivered"} {
			if !strings.Contains(strings.ToLower(timeline), want) {
				t.Errorf("timeline lacks %q:\n%s", want, timeline)
			}
		}
		b.shot("#consumer", "after-consumer.png")
		b.shot("#agent", "after-agent.png")
		b.shot("main.panes", "after.png")
		if os.Getenv("STEPUP_UPDATE_DOCS") == "1" {
			// The two panes side by side: what the README shows.
			png := demoValue(b, chromedp.Screenshot(chromedp.CSSAll("#consumer, #agent")))
			if err := os.WriteFile("../../deploy/docs/demo-after.png", png, 0o644); err != nil {
				t.Fatal(err)
			}
		}

		// Phone-sized: one column, nothing wider than the screen.
		b.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile), chromedp.Reload(), demoWaitJS(`document.getElementById("agent-badge").getClientRects().length > 0`))
		if b.eval(`document.documentElement.scrollWidth > window.innerWidth + 1`) {
			t.Error("the page is wider than a phone screen")
		}
		// The agent pane's blocks stack without overlapping.
		if !b.eval(`(() => {
			const r = (id) => document.getElementById(id).getBoundingClientRect();
			return r("agent-notification").bottom <= r("agent-identity").top + 1 && r("agent-identity").bottom <= r("agent-messages").top + 1 && r("agent-messages").bottom <= r("agent-form").top + 1;
		})()`) {
			t.Error("the agent pane's blocks overlap on a phone")
		}
		// What a phone shows (a viewport capture: an element capture beyond
		// the viewport garbles the scrolled message list).
		b.run(chromedp.ScrollIntoView(chromedp.CSS("#agent")))
		if err := os.WriteFile(filepath.Join(dir, "phone-agent.png"), demoValue(b, chromedp.CaptureScreenshot()), 0o644); err != nil {
			t.Fatal(err)
		}
		b.run(chromedp.ResetViewport())
	})

	t.Run("expired link", func(t *testing.T) {
		b := &demoBrowser{t: t, ctx: ctx, dir: dir}
		b.openConversation(d.URL)
		b.say("consumer", "Hello?")
		b.askToVerify(1)
		b.run(chromedp.Click(chromedp.CSS("#skip")), demoTextIn("#clock", "+11 min"), demoTextIn("#timeline-list", "link expired"))
		tab := b.openLink()
		tab.run(chromedp.WaitVisible(chromedp.CSS("h1")))
		if h := tab.text("h1"); h != "This link has expired" {
			t.Fatalf("expired link page: %q", h)
		}
		tab.shot("main", "expired-link.png")
		tab.close()
		b.shot("#timeline", "expired-timeline.png")
	})

	t.Run("wrong code three times", func(t *testing.T) {
		b := &demoBrowser{t: t, ctx: ctx, dir: dir}
		b.openConversation(d.URL)
		b.say("consumer", "Hi")
		b.askToVerify(1)
		tab := b.openLink()
		tab.signIn("u-1002")
		code := strings.ReplaceAll(tab.text(".code"), " ", "")
		tab.close()
		b.run(demoTextIn("#bridge-state", "login verified"))
		wrong := fmt.Sprintf("%06d", (demoAtoi(code)+500000)%1000000)
		for i := 1; i <= 3; i++ {
			b.say("consumer", wrong)
			b.run(demoWaitJS(fmt.Sprintf(`document.querySelectorAll('#timeline-list li[data-step="code refused"]').length === %d`, i)))
		}
		b.run(demoTextIn("#timeline-list", "Too many wrong confirm codes"), demoTextIn("#bridge-state", "anonymous"))
		b.say("consumer", code)
		b.run(demoWaitJS(`document.querySelectorAll('#agent-messages li[data-from="consumer"]').length === 5`))
		time.Sleep(500 * time.Millisecond) // give a (wrong) step-up time to show
		if !b.eval(`!(document.getElementById("agent-badge").getClientRects().length > 0)`) {
			t.Error("stepped up with a code after the login was locked")
		}
		b.shot("#agent", "wrong-code-agent.png")
		b.shot("#timeline", "wrong-code-timeline.png")
	})

	t.Run("IdP login cancelled", func(t *testing.T) {
		b := &demoBrowser{t: t, ctx: ctx, dir: dir}
		b.openConversation(d.URL)
		b.say("consumer", "Hi")
		b.askToVerify(1)
		tab := b.openLink()
		tab.signIn("")
		if h := tab.text("h1"); h != "Sign-in cancelled" {
			t.Fatalf("cancel page: %q", h)
		}
		tab.shot("main", "cancelled.png")
		tab.close()
		b.run(demoTextIn("#timeline-list", "access_denied"))
		if !b.eval(`!(document.getElementById("agent-badge").getClientRects().length > 0)`) {
			t.Error("stepped up after a cancelled sign-in")
		}
	})
	t.Logf("screenshots in %s", dir)
}
