package pages_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/pages"
)

const testOrigin = "https://jit.example.com"

var csrfKey = bytes.Repeat([]byte{7}, 32)

// setup builds the pages over a fresh fake; log receives the pages' log.
func setup(t *testing.T) (http.Handler, *fakeGrants, *bytes.Buffer) {
	t.Helper()
	grants, log := newFakeGrants(), &bytes.Buffer{}
	h, err := pages.New(pages.Config{
		Grants: grants, Links: fakeLinks{}, Auth: headerAuth, CSRFKey: csrfKey, Origin: testOrigin,
		Clock: fixedClock{now}, Logger: slog.New(slog.NewTextHandler(log, nil)), SignInURL: pages.LoginPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, grants, log
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, h http.Handler, r *http.Request) response {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	checkHeaders(t, res.Header, string(body))
	return response{res.StatusCode, res.Header, string(body)}
}

func get(t *testing.T, h http.Handler, path, user string) response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if user != "" {
		r.Header.Set(userHeader, user)
	}
	return do(t, h, r)
}

func post(t *testing.T, h http.Handler, id, origin, user string, form url.Values) response {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/approvals/"+id, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	if user != "" {
		r.Header.Set(userHeader, user)
	}
	return do(t, h, r)
}

// checkHeaders: every response of the pages carries them, refusals too.
func checkHeaders(t *testing.T, h http.Header, _ string) {
	t.Helper()
	for k, want := range map[string]string{
		"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "style-src 'sha256-", "img-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
		}
	}
}

func page(token string) string { return "/approvals/" + grantID + "?t=" + url.QueryEscape(token) }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formOf is the CSRF token of the page's form.
func formOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the page has no form:\n%s", body)
	}
	return m[1]
}

func TestGet(t *testing.T) {
	t.Parallel()
	escaped := `&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt; &#34;quoted&#34; &#39;single&#39; ` + longWord
	tests := []struct {
		name       string
		path, user string
		wantStatus int
		want       []string
		wantNot    []string
	}{
		{name: "no_token", path: "/approvals/" + grantID, user: carol, wantStatus: http.StatusBadRequest,
			want: []string{"Link incomplete"}, wantNot: []string{"pwned", requester}},
		{name: "tampered_token", path: page(badLink), user: carol, wantStatus: http.StatusBadRequest,
			want: []string{"Link not valid", "Nothing was changed"}, wantNot: []string{"pwned", requester}},
		{name: "expired_token", path: page(expiredLink), user: carol, wantStatus: http.StatusGone,
			want: []string{"This link expired at 2026-12-02 09:30:00 UTC."}, wantNot: []string{"pwned", requester}},
		{name: "other_grant_token", path: page(otherLink), user: carol, wantStatus: http.StatusForbidden,
			want: []string{"another request"}, wantNot: []string{"pwned", requester}},
		{name: "token_of_this_grant_on_another", path: "/approvals/" + otherID + "?t=" + carolLink, user: carol, wantStatus: http.StatusForbidden,
			want: []string{"another request"}, wantNot: []string{"pwned", requester}},
		{name: "no_identity", path: page(carolLink), wantStatus: http.StatusUnauthorized,
			want:    []string{"You are not signed in", `href="/local/login?next=%2Fapprovals%2F` + grantID + `%3Ft%3D` + carolLink + `"`},
			wantNot: []string{"pwned", requester}},
		{name: "not_the_addressee", path: page(carolLink), user: mallory, wantStatus: http.StatusForbidden,
			want:    []string{"This link was sent to carol@example.com; you are signed in as mallory@example.com."},
			wantNot: []string{"pwned", requester, "prod-db"}},
		{name: "look_alike_address", path: page(carolLink), user: "carol@example.com ", wantStatus: http.StatusUnauthorized,
			wantNot: []string{"pwned", requester}},
		{name: "addressee_in_other_case", path: page(carolLink), user: "Carol@Example.com", wantStatus: http.StatusOK,
			want: []string{`name="decision" value="approve"`}},
		{name: "addressee", path: page(carolLink), user: carol, wantStatus: http.StatusOK,
			want: []string{
				`<html lang="en">`, `name="viewport"`, escaped, requester, "prod-db-admin",
				"<code>roles/cloudsql.admin</code> on <code>projects/prod-db</code>",
				"<code>roles/logging.viewer</code> on <code>projects/prod-logs</code> if <code>resource.name.startsWith(&#34;x&#34;)</code>",
				"1 hour 30 minutes (PT1H30M)", "<dt>rows</dt><dd class=\"text\">100</dd>", "<dt>ticket</dt><dd class=\"text\">INC-42</dd>",
				`<time datetime="2026-12-03T12:00:00Z">2026-12-03 12:00:00 UTC</time>`, "APPROVAL_AWAITED", "No decision yet.",
				`<label for="reason">`, `id="reason" name="reason"`, `name="decision" value="approve"`, `name="decision" value="deny"`,
				`name="t" value="` + carolLink + `"`,
			},
			wantNot: []string{"<script>", `"pwned"`}},
		{name: "unknown_grant", path: "/approvals/" + otherID + "?t=" + otherLink, user: carol, wantStatus: http.StatusForbidden},
		{name: "no_such_page", path: "/elsewhere", user: carol, wantStatus: http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, grants, _ := setup(t)
			res := get(t, h, tc.path, tc.user)
			if res.status != tc.wantStatus {
				t.Errorf("status = %d, want %d; body:\n%s", res.status, tc.wantStatus, res.body)
			}
			if ct := res.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			for _, s := range tc.want {
				if !strings.Contains(res.body, s) {
					t.Errorf("the page lacks %q:\n%s", s, res.body)
				}
			}
			for _, s := range tc.wantNot {
				if strings.Contains(res.body, s) {
					t.Errorf("the page shows %q", s)
				}
			}
			if diff := cmp.Diff([]string(nil), grants.Calls()); diff != "" {
				t.Errorf("GET decided (-want, +got):\n%s", diff)
			}
		})
	}
}

func TestPostRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		id, origin string
		user       string
		form       func(csrf string) url.Values
		wantStatus int
		want       string
	}{
		{name: "no_origin", id: grantID, user: carol, wantStatus: http.StatusForbidden, want: "did not come from the approval page",
			form: func(csrf string) url.Values {
				return url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {"approve"}}
			}},
		{name: "foreign_origin", id: grantID, origin: "https://evil.example", user: carol, wantStatus: http.StatusForbidden, want: "did not come from the approval page",
			form: func(csrf string) url.Values {
				return url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {"approve"}}
			}},
		{name: "origin_of_other_scheme", id: grantID, origin: "http://jit.example.com", user: carol, wantStatus: http.StatusForbidden,
			form: func(csrf string) url.Values {
				return url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {"approve"}}
			}},
		{name: "no_csrf", id: grantID, origin: testOrigin, user: carol, wantStatus: http.StatusForbidden, want: "not the one the approval page gave you",
			form: func(string) url.Values { return url.Values{"t": {carolLink}, "decision": {"approve"}} }},
		{name: "bad_csrf", id: grantID, origin: testOrigin, user: carol, wantStatus: http.StatusForbidden, want: "not the one the approval page gave you",
			form: func(csrf string) url.Values {
				return url.Values{"t": {carolLink}, "csrf": {csrf[:len(csrf)-2] + "AA"}, "decision": {"approve"}}
			}},
		{name: "csrf_of_another_approver", id: grantID, origin: testOrigin, user: dave, wantStatus: http.StatusForbidden,
			form: func(csrf string) url.Values {
				return url.Values{"t": {daveLink}, "csrf": {csrf}, "decision": {"approve"}}
			}},
		{name: "tampered_token", id: grantID, origin: testOrigin, user: carol, wantStatus: http.StatusBadRequest, want: "Link not valid",
			form: func(csrf string) url.Values {
				return url.Values{"t": {badLink}, "csrf": {csrf}, "decision": {"approve"}}
			}},
		{name: "expired_token", id: grantID, origin: testOrigin, user: carol, wantStatus: http.StatusGone, want: "expired at",
			form: func(csrf string) url.Values {
				return url.Values{"t": {expiredLink}, "csrf": {csrf}, "decision": {"approve"}}
			}},
		{name: "not_the_addressee", id: grantID, origin: testOrigin, user: mallory, wantStatus: http.StatusForbidden, want: "This link was sent to carol@example.com",
			form: func(csrf string) url.Values {
				return url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {"approve"}}
			}},
		{name: "no_identity", id: grantID, origin: testOrigin, wantStatus: http.StatusUnauthorized, want: "not signed in",
			form: func(csrf string) url.Values {
				return url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {"approve"}}
			}},
		{name: "deny_without_reason", id: grantID, origin: testOrigin, user: carol, wantStatus: http.StatusBadRequest, want: "To deny a request, say why",
			form: func(csrf string) url.Values {
				return url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {"deny"}, "reason": {"  \n "}}
			}},
		{name: "unknown_decision", id: grantID, origin: testOrigin, user: carol, wantStatus: http.StatusBadRequest, want: "Choose Approve or Deny",
			form: func(csrf string) url.Values {
				return url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {"maybe"}}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, grants, _ := setup(t)
			csrf := formOf(t, get(t, h, page(carolLink), carol).body)
			res := post(t, h, tc.id, tc.origin, tc.user, tc.form(csrf))
			if res.status != tc.wantStatus {
				t.Errorf("status = %d, want %d; body:\n%s", res.status, tc.wantStatus, res.body)
			}
			if !strings.Contains(res.body, tc.want) {
				t.Errorf("the page lacks %q:\n%s", tc.want, res.body)
			}
			if diff := cmp.Diff([]string(nil), grants.Calls()); diff != "" {
				t.Errorf("a refused POST decided (-want, +got):\n%s", diff)
			}
		})
	}
}

func TestDenyWithoutReasonShowsTheFormAgain(t *testing.T) {
	t.Parallel()
	h, _, _ := setup(t)
	csrf := formOf(t, get(t, h, page(carolLink), carol).body)
	res := post(t, h, grantID, testOrigin, carol, url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {"deny"}})
	if res.status != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400", res.status)
	}
	if got := formOf(t, res.body); got != csrf {
		t.Errorf("the form again has CSRF %q, want the page's", got)
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		decision  string
		reason    string
		wantCalls []string
		want      []string
	}{
		{name: "approve", decision: "approve", wantCalls: []string{"approve " + carol},
			want: []string{"ACTIVATING", "Approved by carol@example.com at <time datetime=\"2026-12-03T10:01:00Z\">2026-12-03 10:01:00 UTC</time>"}},
		{name: "approve_with_reason", decision: "approve", reason: "ok <b>", wantCalls: []string{"approve " + carol},
			want: []string{"ACTIVATING", `: <span class="text">ok &lt;b&gt;</span>`}},
		{name: "deny", decision: "deny", reason: "not during the freeze", wantCalls: []string{"deny " + carol},
			want: []string{"DENIED", "Denied by carol@example.com at", "not during the freeze"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, grants, log := setup(t)
			csrf := formOf(t, get(t, h, page(carolLink), carol).body)
			res := post(t, h, grantID, testOrigin, carol, url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {tc.decision}, "reason": {tc.reason}})
			if res.status != http.StatusSeeOther {
				t.Fatalf("status = %d, want 303; body:\n%s", res.status, res.body)
			}
			loc := res.header.Get("Location")
			if loc != page(carolLink) {
				t.Errorf("Location = %q, want %q", loc, page(carolLink))
			}
			if diff := cmp.Diff(tc.wantCalls, grants.Calls()); diff != "" {
				t.Errorf("calls (-want, +got):\n%s", diff)
			}
			after := get(t, h, loc, carol)
			for _, s := range append(tc.want, "no longer awaiting approval") {
				if !strings.Contains(after.body, s) {
					t.Errorf("the page after the decision lacks %q:\n%s", s, after.body)
				}
			}
			if strings.Contains(after.body, `name="csrf"`) {
				t.Error("the page after the decision still has the form")
			}
			if strings.Contains(log.String(), carolLink) || strings.Contains(log.String(), csrf) {
				t.Errorf("the log holds the token or the CSRF value:\n%s", log)
			}
		})
	}
}

func TestSecondDecisionNamesWhoDecided(t *testing.T) {
	t.Parallel()
	h, grants, _ := setup(t)
	// Both approvers open the page; carol approves first.
	carolCSRF := formOf(t, get(t, h, page(carolLink), carol).body)
	daveCSRF := formOf(t, get(t, h, page(daveLink), dave).body)
	if res := post(t, h, grantID, testOrigin, carol, url.Values{"t": {carolLink}, "csrf": {carolCSRF}, "decision": {"approve"}}); res.status != http.StatusSeeOther {
		t.Fatalf("carol's approval: status %d", res.status)
	}
	res := post(t, h, grantID, testOrigin, dave, url.Values{"t": {daveLink}, "csrf": {daveCSRF}, "decision": {"deny"}, "reason": {"no"}})
	if res.status != http.StatusConflict {
		t.Errorf("status = %d, want 409", res.status)
	}
	for _, s := range []string{"Nothing was changed", "Approved by carol@example.com at", "2026-12-03 10:01:00 UTC", "ACTIVATING"} {
		if !strings.Contains(res.body, s) {
			t.Errorf("the page lacks %q:\n%s", s, res.body)
		}
	}
	if diff := cmp.Diff([]string{"approve " + carol, "deny " + dave}, grants.Calls()); diff != "" {
		t.Errorf("calls (-want, +got):\n%s", diff)
	}
	g, _ := grants.Get(t.Context(), lifecycle.Caller{Email: carol}, grantID)
	if len(g.Decisions) != 1 {
		t.Errorf("decisions = %+v, want carol's only", g.Decisions)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := pages.Config{Grants: newFakeGrants(), Links: fakeLinks{}, Auth: headerAuth, CSRFKey: csrfKey, Origin: testOrigin, Clock: fixedClock{now}}
	tests := []struct {
		name   string
		change func(c *pages.Config)
		want   []string
	}{
		{name: "good", change: func(*pages.Config) {}},
		{name: "default_port_is_fine", change: func(c *pages.Config) { c.Origin = "https://jit.example.com:443" }},
		{name: "nothing", change: func(c *pages.Config) { *c = pages.Config{} },
			want: []string{"Grants is required", "Links is required", "Auth is required", "Clock is required", "CSRFKey must be at least 32 bytes, got 0", `Origin ""`}},
		{name: "short_key", change: func(c *pages.Config) { c.CSRFKey = csrfKey[:31] }, want: []string{"got 31"}},
		{name: "origin_with_path", change: func(c *pages.Config) { c.Origin = "https://jit.example.com/approvals" }, want: []string{"scheme://host[:port]"}},
		{name: "origin_without_scheme", change: func(c *pages.Config) { c.Origin = "jit.example.com" }, want: []string{"scheme must be http or https"}},
		{name: "sign_in_elsewhere", change: func(c *pages.Config) { c.SignInURL = "https://evil.example/login" }, want: []string{"SignInURL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := good
			tc.change(&c)
			_, err := pages.New(c)
			if (err != nil) != (len(tc.want) > 0) {
				t.Fatalf("New() error = %v, want one saying %q", err, tc.want)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestDefaultPortOriginMatchesBrowsers(t *testing.T) {
	t.Parallel()
	grants := newFakeGrants()
	h, err := pages.New(pages.Config{Grants: grants, Links: fakeLinks{}, Auth: headerAuth, CSRFKey: csrfKey,
		Origin: "HTTPS://JIT.example.com:443/", Clock: fixedClock{now}})
	if err != nil {
		t.Fatal(err)
	}
	csrf := formOf(t, get(t, h, page(carolLink), carol).body)
	if res := post(t, h, grantID, testOrigin, carol, url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {"approve"}}); res.status != http.StatusSeeOther {
		t.Errorf("status = %d, want 303:\n%s", res.status, res.body)
	}
}

// Under Referrer-Policy: no-referrer browsers send "Origin: null" with the
// form's POST; it is taken for the pages' own only when Sec-Fetch-Site
// (which pages cannot set) says same-origin.
func TestNullOrigin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, origin, site string
		decided            bool
	}{
		{"null, same origin", "null", "same-origin", true},
		{"null, cross site", "null", "cross-site", false},
		{"null, same site", "null", "same-site", false},
		{"null, typed in", "null", "none", false},
		{"null, no fetch metadata", "null", "", false},
		{"foreign origin claiming same-origin", "https://evil.example", "same-origin", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, grants, _ := setup(t)
			csrf := formOf(t, get(t, h, page(carolLink), carol).body)
			form := url.Values{"t": {carolLink}, "csrf": {csrf}, "decision": {"approve"}}
			r := httptest.NewRequest(http.MethodPost, "/approvals/"+grantID, strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Origin", tc.origin)
			if tc.site != "" {
				r.Header.Set("Sec-Fetch-Site", tc.site)
			}
			r.Header.Set(userHeader, carol)
			res := do(t, h, r)
			if decided := len(grants.Calls()) == 1; decided != tc.decided || (!tc.decided && res.status != http.StatusForbidden) {
				t.Errorf("status %d, calls %v; want decided=%v (else 403)", res.status, grants.Calls(), tc.decided)
			}
		})
	}
}
