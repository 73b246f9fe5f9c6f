package pages_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/browsertest"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/pages"
)

// serve runs the pages and the user picker on a loopback server, as local
// mode does: the caller is the picker's cookie unless auth says otherwise.
func serve(t *testing.T, auth pages.Authenticator) (*httptest.Server, *fakeGrants) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	if auth == nil {
		auth = pages.AuthenticatorFunc(func(r *http.Request) (lifecycle.Caller, error) {
			if email, ok := pages.LocalCookieCaller(r); ok {
				return lifecycle.Caller{Email: email}, nil
			}
			return lifecycle.Caller{}, http.ErrNoCookie
		})
	}
	grants := newFakeGrants()
	h, err := pages.New(pages.Config{
		Grants: grants, Links: fakeLinks{}, Auth: auth, CSRFKey: csrfKey,
		Origin: "http://" + srv.Listener.Addr().String(), Clock: fixedClock{now}, SignInURL: pages.LoginPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	picker, err := pages.LocalLogin(pages.LocalLoginConfig{Users: func() []string { return []string{carol, dave, mallory} }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(pages.LoginPath, picker)
	mux.Handle("/", h)
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, grants
}

// TestBrowserSignInAndApprove walks the approver's path in Chromium: the
// link, signing in with the picker, reading the request — the requester's
// markup shown as text, not run —, and approving.
func TestBrowserSignInAndApprove(t *testing.T) {
	t.Parallel()
	ctx := browsertest.New(t)
	srv, grants := serve(t, nil)

	steps := []struct {
		name string
		do   chromedp.Action[chromedp.Void]
	}{
		{"open the link", chromedp.Navigate(srv.URL + page(carolLink))},
		{"follow sign in", browsertest.WaitNavigation(chromedp.Click(chromedp.CSS("a")))},
		{"pick carol", browsertest.WaitNavigation(chromedp.Click(chromedp.CSS(`button[value="carol@example.com"]`)))},
	}
	for i, s := range steps {
		if err := chromedp.Do(ctx, s.do); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		// Each page on the way — sign-in needed, the user picker — is
		// accessible (WCAG 2.1 A and AA).
		if i < len(steps)-1 {
			browsertest.NoViolations(t, ctx, s.name)
		}
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if want := srv.URL + page(carolLink); loc != want {
		t.Fatalf("after picking carol the browser is at %q, want %q; page:\n%s", loc, want, browsertest.Run(t, ctx, chromedp.Text(chromedp.CSS("main"))))
	}

	title := browsertest.Run(t, ctx, chromedp.Title())
	if want := "Access request " + grantID + " · JIT access"; title != want {
		t.Errorf("document.title = %q, want %q: the justification's script ran?", title, want)
	}
	if got := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#justification"))); got != evil {
		t.Errorf("the justification reads %q, want the requester's text as typed", got)
	}
	if n := browsertest.Run(t, ctx, chromedp.Evaluate[int]("document.scripts.length")); n != 0 {
		t.Errorf("the page has %d script elements", n)
	}
	// The 2,000-character word wraps instead of widening the page.
	if wide := browsertest.Run(t, ctx, chromedp.Evaluate[bool]("document.documentElement.scrollWidth > document.documentElement.clientWidth")); wide {
		t.Error("the page scrolls sideways: the long word does not wrap")
	}
	// The inline stylesheet applied, so its CSP hash is right.
	if w := browsertest.Run(t, ctx, chromedp.Evaluate[string]("getComputedStyle(document.querySelector('main')).maxWidth")); w != "704px" {
		t.Errorf("main's max-width = %q, want 704px (44rem): the stylesheet was blocked?", w)
	}
	if calls := grants.Calls(); len(calls) != 0 {
		t.Fatalf("reading the page decided: %v", calls)
	}
	browsertest.NoViolations(t, ctx, "the approval page")

	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#reason"), "looks right"),
		browsertest.WaitNavigation(chromedp.Click(chromedp.CSS("#approve"))),
	); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if diff := cmp.Diff([]string{"approve " + carol}, grants.Calls()); diff != "" {
		t.Errorf("calls (-want, +got):\n%s", diff)
	}
	state := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#state")))
	decisions := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#decisions")))
	for _, want := range []string{"ACTIVATING", "Approved by carol@example.com at 2026-12-03 10:01:00 UTC: looks right"} {
		if !strings.Contains(state+decisions, want) {
			t.Errorf("after approving the page reads %q / %q, want %q", state, decisions, want)
		}
	}
	if loc := browsertest.Run(t, ctx, chromedp.Location()); loc != srv.URL+page(carolLink) {
		t.Errorf("after approving the browser is at %q, want the page again (Post/Redirect/Get)", loc)
	}
	browsertest.NoViolations(t, ctx, "the approval page after the decision")
}

// TestBrowserLoadingDecidesNothing: opening the link — whatever a mail
// scanner or prefetcher does with it — decides nothing.
func TestBrowserLoadingDecidesNothing(t *testing.T) {
	t.Parallel()
	ctx := browsertest.New(t)
	srv, grants := serve(t, pages.AuthenticatorFunc(func(*http.Request) (lifecycle.Caller, error) {
		return lifecycle.Caller{Email: carol}, nil
	}))
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+page(carolLink)),
		chromedp.WaitVisible(chromedp.CSS("#approve")),
		chromedp.WaitVisible(chromedp.CSS("#deny")),
	); err != nil {
		t.Fatal(err)
	}
	state := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#state")))
	if !strings.Contains(state, "APPROVAL_AWAITED") {
		t.Errorf("state reads %q, want APPROVAL_AWAITED", state)
	}
	if calls := grants.Calls(); len(calls) != 0 {
		t.Errorf("loading the page decided: %v", calls)
	}
	g, _ := grants.Get(t.Context(), lifecycle.Caller{Email: carol}, grantID)
	if len(g.Decisions) != 0 || g.State != grant.ApprovalAwaited {
		t.Errorf("the grant changed: %s, %+v", g.State, g.Decisions)
	}
}
