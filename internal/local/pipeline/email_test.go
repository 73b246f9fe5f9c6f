package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jitpipeline/jit/internal/approvallink"
	"github.com/jitpipeline/jit/internal/browsertest"
	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/local/pipeline"
)

// The email approval issue's acceptance, on the whole embedded pipeline:
// mail over SMTP into the local mailbox, links to the approval page,
// decisions in Chromium. The clock is real: approval windows and link
// deadlines must outlast a browser.

const (
	bob   = "bob@example.com"
	carol = "carol@example.com"
	erin  = "erin@example.com" // the managers group, approvers of admin
	dave  = "dave@example.com"
)

// evil is a justification that would run, break out of attributes or
// widen the page if anything rendered it unescaped.
var evil = `<script>document.title="pwned"</script> "double" 'single' ` + strings.Repeat("w", 2000)

type mailMsg struct {
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Text    string   `json:"text"`
	HTML    string   `json:"html"`
	Links   []string `json:"links"`
}

func startMail(t *testing.T) *env {
	t.Helper()
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := writeFile(policy, string(pipeline.DemoPolicy())); err != nil {
		t.Fatal(err)
	}
	return start(t, pipeline.Config{Clock: clock.Real(), PolicyFile: policy})
}

// mailsAbout waits until the mailbox holds n mails about grant id (real
// time, 30 s) and returns them.
func (e *env) mailsAbout(id string, n int) []mailMsg {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got []mailMsg
	for time.Now().Before(deadline) {
		got = nil
		for _, m := range e.mailbox() {
			if strings.Contains(m.Text, id) {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("%d mails about %s, want %d: %+v", len(got), id, n, got)
	return nil
}

func (e *env) mailbox() []mailMsg {
	e.t.Helper()
	resp, err := http.Get(e.url + "/local/mail?format=json")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Messages []mailMsg }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		e.t.Fatal(err)
	}
	return body.Messages
}

// to picks the one mail addressed to addr.
func to(t *testing.T, ms []mailMsg, addr string) mailMsg {
	t.Helper()
	var found []mailMsg
	for _, m := range ms {
		if len(m.To) == 1 && m.To[0] == addr {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d mails to %s, want 1: %+v", len(found), addr, ms)
	}
	return found[0]
}

func approvalLink(t *testing.T, m mailMsg) string {
	t.Helper()
	var links []string
	for _, l := range m.Links {
		if strings.Contains(l, "/approvals/") {
			links = append(links, l)
		}
	}
	if len(links) != 1 {
		t.Fatalf("mail to %v carries %d approval links, want 1: %v", m.To, len(links), m.Links)
	}
	return links[0]
}

// snapshot is everything a decision would change.
type snapshot struct {
	State    string
	Timeline int
	Events   int
	Etag     string
}

func (e *env) snapshot(id string) snapshot {
	e.t.Helper()
	_, g := e.call("GET", "/v1/grants/"+id, bob, nil)
	tl, _ := g["timeline"].([]any)
	resp, err := http.Get(e.url + "/local/iam/projects/demo-project")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var pol struct{ Etag string }
	if err := json.NewDecoder(resp.Body).Decode(&pol); err != nil {
		e.t.Fatal(err)
	}
	state, _ := g["state"].(string)
	return snapshot{State: state, Timeline: len(tl), Events: publishedAbout(e, id), Etag: pol.Etag}
}

// publishedAbout counts the messages published about grant id (events and
// commands carry it as their CloudEvents subject).
func publishedAbout(e *env, id string) int {
	f := e.p.Cloud.PubSub.Fake()
	if f == nil {
		return -1
	}
	n := 0
	for _, m := range f.Messages() {
		if m.Attributes["ce-subject"] == id {
			n++
		}
	}
	return n
}

// fetch GETs a link as user ("" for nobody), as a scanner or a forwarded
// mail would, and returns the status and the page's text.
func fetch(t *testing.T, link, user string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", link, nil)
	if user != "" {
		req.Header.Set("X-Debug-Principal", "user:"+user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) requestWith(user, entitlement, justification string) string {
	e.t.Helper()
	code, g := e.call("POST", "/v1/grants", user, map[string]any{"entitlement": entitlement, "requestedDuration": "PT5M", "justification": justification})
	if code != http.StatusCreated {
		e.t.Fatalf("request by %s: %d %v", user, code, g)
	}
	return g["id"].(string)
}

// TestApprovalMails: bob's request mails carol and the manager one link
// each and tells bob who was asked; the justification arrives escaped in
// both parts; fetching the links with no identity, as the wrong user, or
// with a tampered, expired or foreign token changes nothing and says why.
func TestApprovalMails(t *testing.T) {
	// Not parallel: run before the package's parallel tests, whose fast
	// clocks and chaos deliveries suffer when a browser takes the CPU.
	e := startMail(t)
	id := e.requestWith(bob, "demo.demo-project.admin", evil)
	e.mailsAbout(id, 3)
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	ms := e.mailsAbout(id, 3)
	if len(ms) != 3 {
		t.Fatalf("%d mails, want 3 (carol, erin, bob): %+v", len(ms), ms)
	}
	carolMail, erinMail, bobMail := to(t, ms, carol), to(t, ms, erin), to(t, ms, bob)
	carolLink, erinLink := approvalLink(t, carolMail), approvalLink(t, erinMail)
	for _, l := range bobMail.Links {
		if strings.Contains(l, "/approvals/") {
			t.Errorf("the requester got an approval link: %s", l)
		}
	}
	for _, who := range []string{carol, erin} {
		if !strings.Contains(bobMail.Text, who) {
			t.Errorf("bob's mail does not say %s was asked:\n%s", who, bobMail.Text)
		}
	}
	for _, m := range []mailMsg{carolMail, erinMail} {
		if !strings.Contains(m.Text, evil) {
			t.Errorf("the text part to %v does not carry the justification as typed", m.To)
		}
		if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") {
			t.Errorf("the HTML part to %v does not escape the justification", m.To)
		}
		if strings.Contains(m.Subject, "script") {
			t.Errorf("the subject carries free text: %q", m.Subject)
		}
	}

	// The page shows the request to its addressee only, escaped.
	code, body := fetch(t, carolLink, carol)
	if code != http.StatusOK || strings.Contains(body, "<script>document") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("carol's page: %d, escaped justification %v", code, strings.Contains(body, "&lt;script&gt;"))
	}

	before := e.snapshot(id)
	if before.Events < 1 || before.Etag == "" || before.State != string(grant.ApprovalAwaited) {
		t.Fatalf("snapshot %+v: the events about the grant or the policy's etag are not seen", before)
	}
	u, _ := url.Parse(carolLink)
	tok := u.Query().Get("t")
	other := e.requestWith(bob, "demo.demo-project.admin", "another")
	expired := mintLink(t, e, id, carol, time.Now().Add(-time.Hour))
	for _, tc := range []struct {
		name, link, user string
		code             int
		says             string
	}{
		{"no identity", carolLink, "", http.StatusUnauthorized, "sign in"},
		{"the wrong user", carolLink, dave, http.StatusForbidden, "was sent to carol@example.com"},
		{"another approver's link", erinLink, carol, http.StatusForbidden, "was sent to erin@example.com"},
		{"a tampered token", replaceToken(carolLink, tok[:len(tok)-2]+flip(tok[len(tok)-2:])), carol, http.StatusBadRequest, "not valid"},
		{"an expired token", replaceToken(carolLink, expired), carol, http.StatusGone, "expired"},
		{"another grant's token", strings.Replace(carolLink, "/approvals/"+id, "/approvals/"+other, 1), carol, http.StatusForbidden, "another request"},
	} {
		code, body := fetch(t, tc.link, tc.user)
		if code != tc.code || !strings.Contains(strings.ToLower(body), tc.says) {
			t.Errorf("%s: %d, want %d saying %q:\n%.600s", tc.name, code, tc.code, tc.says, text(body))
		}
	}
	if after := e.snapshot(id); after != before {
		t.Errorf("fetching the links changed something: %+v → %+v", before, after)
	}
}

// TestApproveAndDenyInChromium: carol approves from her link in the
// browser and sees the grant ACTIVE; the manager's link then says who
// approved and offers no second decision, which the API refuses too; bob
// hears the outcome. The same with a denial and its reason. Rendering a
// link without clicking decides nothing.
func TestApproveAndDenyInChromium(t *testing.T) {
	// Not parallel, as TestApprovalMails.
	ctx := browsertest.New(t)
	e := startMail(t)

	id := e.requestWith(bob, "demo.demo-project.admin", evil)
	ms := e.mailsAbout(id, 3)
	carolLink, erinLink := approvalLink(t, to(t, ms, carol)), approvalLink(t, to(t, ms, erin))

	// Rendered by a browser nobody signed into (a scanner): nothing.
	before := e.snapshot(id)
	scanner, cancel := chromedp.NewContext(ctx)
	defer cancel()
	if err := chromedp.Do(scanner, chromedp.Navigate(erinLink), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, carolLink, carol)
	if title := browsertest.Run(t, ctx, chromedp.Title()); strings.Contains(title, "pwned") {
		t.Fatal("the justification's script ran")
	}
	if after := e.snapshot(id); after != before {
		t.Errorf("rendering the links changed something: %+v → %+v", before, after)
	}

	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#reason"), "fine by me"),
		browsertest.WaitNavigation(chromedp.Click(chromedp.CSS("#approve"))),
	); err != nil {
		t.Fatalf("approve: %v", err)
	}
	e.waitState(bob, id, grant.Active)
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	if state := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#state"))); !strings.Contains(state, "ACTIVE") {
		t.Errorf("carol's page reads %q after approving, want ACTIVE", state)
	}

	// The manager's link now says who decided, and offers nothing.
	signIn(t, ctx, erinLink, erin)
	decisions := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("#decisions")))
	if !strings.Contains(strings.ToLower(decisions), "approved by carol@example.com") {
		t.Errorf("erin's page reads %q, want it to say carol approved", decisions)
	}
	if n := browsertest.Run(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#approve, #deny").length`)); n != 0 {
		t.Errorf("erin's page still offers %d decision buttons", n)
	}
	if code, _ := e.call("POST", "/v1/grants/"+id+":approve", erin, map[string]any{}); code != http.StatusConflict {
		t.Errorf("a second decision: %d, want 409", code)
	}
	outcome := e.mailsAbout(id, 5) // + bob's and erin's news of the approval
	if !anyTo(outcome, bob, "carol@example.com") {
		t.Errorf("bob was not told carol approved: %+v", outcome)
	}

	// A denial, with its reason, from the browser.
	id2 := e.requestWith(bob, "demo.demo-project.admin", "second try")
	carol2 := approvalLink(t, to(t, e.mailsAbout(id2, 3), carol))
	signIn(t, ctx, carol2, carol)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#reason"), "not during the freeze"),
		browsertest.WaitNavigation(chromedp.Click(chromedp.CSS("#deny"))),
	); err != nil {
		t.Fatalf("deny: %v", err)
	}
	e.waitState(bob, id2, grant.Denied)
	if !anyTo(e.mailsAbout(id2, 4), bob, "not during the freeze") {
		t.Error("bob was not told the reason of the denial")
	}
}

// signIn opens link in the browser and, if the page asks, signs in as
// user with the local user picker, which brings the browser back.
func signIn(t *testing.T, ctx context.Context, link, user string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
		t.Fatal(err)
	}
	who := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("main")))
	if !strings.Contains(who, "Signed in as "+user) {
		if err := chromedp.Do(ctx, chromedp.Navigate(link[:strings.Index(link, "/approvals/")]+"/local/login?next="+url.QueryEscape(link[strings.Index(link, "/approvals/"):]))); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, browsertest.WaitNavigation(chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[value=%q]`, user))))); err != nil {
			t.Fatalf("pick %s: %v", user, err)
		}
	}
	if who := browsertest.Run(t, ctx, chromedp.TextContent(chromedp.CSS("main"))); !strings.Contains(who, "Signed in as "+user) {
		t.Fatalf("not signed in as %s at %s:\n%.400s", user, link, who)
	}
}

func anyTo(ms []mailMsg, addr, says string) bool {
	for _, m := range ms {
		if len(m.To) == 1 && m.To[0] == addr && strings.Contains(m.Text, says) {
			return true
		}
	}
	return false
}

// mintLink signs a link as the approval function does, with its key in the
// data directory, for a deadline of our choosing.
func mintLink(t *testing.T, e *env, id, approver string, deadline time.Time) string {
	t.Helper()
	// Minted an hour and a minute before deadline, by the clock it runs on.
	m := approvallink.Minter{Keys: approvallink.FileKeys(filepath.Join(e.p.DataDir, "approval-link.key")), Audience: e.url, Issuer: "jit-approval",
		Clock: clock.NewManual(deadline.Add(-time.Minute))}
	tok, err := m.Mint(t.Context(), id, approver, deadline)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func replaceToken(link, tok string) string {
	u, _ := url.Parse(link)
	q := u.Query()
	q.Set("t", tok)
	u.RawQuery = q.Encode()
	return u.String()
}

func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

// text strips tags, for error messages.
func text(html string) string {
	var b strings.Builder
	in := false
	for _, r := range html {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
