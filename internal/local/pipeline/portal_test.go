package pipeline_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/jitpipeline/jit/internal/browsertest"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/local/pipeline"
)

// portalAs opens path of the people's pages as user, signing in with the
// local user picker when someone else (or nobody) is signed in.
func portalAs(t *testing.T, ctx context.Context, e *env, path, user string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+path), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
		t.Fatal(err)
	}
	if main := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("main"))); !strings.Contains(main, "Signed in as "+user) {
		if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/local/login?next="+url.QueryEscape(path))); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, browsertest.WaitNavigation(chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[value=%q]`, user))))); err != nil {
			t.Fatalf("pick %s: %v", user, err)
		}
	}
	if main := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("main"))); !strings.Contains(main, "Signed in as "+user) {
		t.Fatalf("not signed in as %s at %s:\n%.400s", user, path, main)
	}
}

// submit clicks a form's button and waits for the page it leads to.
func submit(t *testing.T, ctx context.Context, button string) {
	t.Helper()
	if err := chromedp.Do(ctx, browsertest.WaitNavigation(chromedp.Click(chromedp.CSS(button)))); err != nil {
		t.Fatalf("click %s: %v", button, err)
	}
}

// waitPageState reloads the grant page until it shows want.
func waitPageState(t *testing.T, ctx context.Context, want grant.State) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		state := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#state")))
		if strings.Contains(state, "State: "+string(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the grant page reads %q, want %s", state, want)
		}
		time.Sleep(200 * time.Millisecond)
		if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
	}
}

// grantIDOnPage is the grant the page shows.
func grantIDOnPage(t *testing.T, ctx context.Context) string {
	t.Helper()
	return strings.TrimSpace(browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("h1 .id"))))
}

// The first acceptance, in Chromium: alice requests the viewer
// entitlement from the form and watches it become ACTIVE and then ENDED;
// bob requests admin and carol approves it from her inbox; an
// administrator lists the active grants, revokes bob's with a reason and
// downloads the CSV. axe-core finds no WCAG 2.1 A/AA violation on any
// page on the way.
func TestPortalInChromium(t *testing.T) {
	// Not parallel, as the other browser tests: a fast clock and a browser
	// compete for the CPU.
	ctx := browsertest.New(t)
	e := start(t, pipeline.Config{})
	// Every page is checked by axe-core, and at a phone's width it does
	// not scroll sideways.
	accessible := func(page string) {
		t.Helper()
		browsertest.NoViolations(t, ctx, page)
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(360, 740)); err != nil {
			t.Fatal(err)
		}
		if wide := browsertest.Run(t, ctx, chromedp.Evaluate[bool]("document.documentElement.scrollWidth > document.documentElement.clientWidth")); wide {
			t.Errorf("%s scrolls sideways at 360 px", page)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
			t.Fatal(err)
		}
	}

	portalAs(t, ctx, e, "/entitlements", alice)
	accessible("alice's entitlements")
	if err := chromedp.Do(ctx, browsertest.WaitNavigation(chromedp.Click(chromedp.CSS(`a[href="/request?entitlement=demo.demo-project.viewer"]`)))); err != nil {
		t.Fatalf("open the request form: %v", err)
	}
	accessible("the request form")
	// A refusal keeps what was typed and says why.
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#minutes"), "100000"), chromedp.SendKeys(chromedp.CSS("#justification"), "checking the dashboards")); err != nil {
		t.Fatal(err)
	}
	// The server refuses what the browser's own check would (the field's max).
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`document.querySelector("#minutes").removeAttribute("max")`)); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, "#submit")
	if notice := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#notice"))); !strings.Contains(notice, "requestedDuration") {
		t.Errorf("refused request says %q", notice)
	}
	if j := browsertest.Run(t, ctx, chromedp.Value(chromedp.CSS("#justification"))); j != "checking the dashboards" {
		t.Errorf("the form lost the justification: %q", j)
	}
	accessible("the refused request form")
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#minutes"), "5")); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, "#submit")
	aliceGrant := grantIDOnPage(t, ctx)
	waitPageState(t, ctx, grant.Active)
	accessible("alice's active grant")
	if tl := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#timeline"))); !strings.Contains(tl, "activated") {
		t.Errorf("the timeline reads %q", tl)
	}
	waitPageState(t, ctx, grant.Ended)
	if !strings.HasPrefix(aliceGrant, "g-") {
		t.Fatalf("grant id %q", aliceGrant)
	}

	// bob asks for admin; carol approves from her inbox.
	portalAs(t, ctx, e, "/request?entitlement=demo.demo-project.admin", bob)
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#minutes"), "60"), chromedp.SendKeys(chromedp.CSS("#justification"), "deploy fix")); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, "#submit")
	bobGrant := grantIDOnPage(t, ctx)
	waitPageState(t, ctx, grant.ApprovalAwaited)
	portalAs(t, ctx, e, "/grants", carol)
	accessible("carol's access and inbox")
	if err := chromedp.Do(ctx, browsertest.WaitNavigation(chromedp.Click(chromedp.CSS(`#inbox a[href$="/approvals/`+bobGrant+`?t=inbox"]`)))); err != nil {
		t.Fatalf("open bob's request from the inbox: %v", err)
	}
	accessible("the approval page from the inbox")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#reason"), "ok")); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, "#approve")
	e.waitState(bob, bobGrant, grant.Active)

	// The administrator: active grants, bob's revoked with a reason, the CSV.
	portalAs(t, ctx, e, "/admin/grants?state=ACTIVE", grace)
	accessible("all grants")
	if rows := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("table.grants"))); !strings.Contains(rows, bobGrant) || strings.Contains(rows, aliceGrant) {
		t.Errorf("active grants list %q, want bob's and not alice's ended one", rows)
	}
	if err := chromedp.Do(ctx, browsertest.WaitNavigation(chromedp.Click(chromedp.CSS(`#row-`+bobGrant+` a`)))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#reason"), "incident over")); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, "#revoke")
	waitPageState(t, ctx, grant.Revoked)
	accessible("the revoked grant")
	if tl := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#timeline"))); !strings.Contains(tl, "incident over") {
		t.Errorf("the timeline does not carry the reason: %q", tl)
	}

	portalAs(t, ctx, e, "/admin/policy", grace)
	accessible("the policy in force")
	if lint := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#lint"))); !strings.Contains(lint, "No issues") {
		t.Errorf("the policy page's lint reads %q", lint)
	}
	if doc := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#document"))); !strings.Contains(doc, "schemaVersion: 1") {
		t.Errorf("the policy page does not show the document: %.200q", doc)
	}
	// bob holds neither RECONCILE nor EXPORT: no policy, no list of everyone.
	portalAs(t, ctx, e, "/grants", bob)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/admin/policy"), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
		t.Fatal(err)
	}
	accessible("a refusal")
	if main := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("main"))); !strings.Contains(main, "needs the RECONCILE or EXPORT permission") {
		t.Errorf("bob's policy page reads %.300q", main)
	}

	dir := t.TempDir()
	portalAs(t, ctx, e, "/admin/grants", grace)
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir,
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#export"))); err != nil {
		t.Fatal(err)
	}
	var data []byte
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "grants.csv")); err == nil && len(b) > 0 {
			data = b
			break
		}
	}
	rows, err := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil || len(rows) < 3 {
		t.Fatalf("downloaded CSV: %v, %d rows:\n%s", err, len(rows), data)
	}
	states := map[string]string{}
	for _, r := range rows[1:] {
		states[r[0]] = r[3]
	}
	if states[aliceGrant] != "ENDED" || states[bobGrant] != "REVOKED" {
		t.Errorf("CSV states %v", states)
	}
}

// A form posted from another site (or by a script elsewhere) is refused
// and changes nothing; the same form from the pages' own origin works.
func TestPortalRefusesForeignForms(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	post := func(headers map[string]string) int {
		form := url.Values{"entitlement": {"demo.demo-project.viewer"}, "minutes": {"5"}, "justification": {"forged"}}
		req, _ := http.NewRequestWithContext(t.Context(), "POST", e.url+"/request", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Debug-Principal", "user:"+alice)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, h := range map[string]map[string]string{
		"no origin":                       {},
		"another site":                    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
		"another host, no fetch metadata": {"Origin": "https://evil.example"},
		"null, cross-site":                {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
	} {
		if code := post(h); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
	}
	if n := e.grantCount(alice); n != 0 {
		t.Fatalf("refused forms stored %d grants", n)
	}
	if code := post(map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}); code != http.StatusSeeOther {
		t.Errorf("the pages' own form: %d, want 303 to the grant", code)
	}
	if n := e.grantCount(alice); n != 1 {
		t.Errorf("the pages' own form stored %d grants, want 1", n)
	}
}
