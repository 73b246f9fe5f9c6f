package pages_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/pages"
)

func newPicker(t *testing.T) http.Handler {
	t.Helper()
	h, err := pages.LocalLogin(pages.LocalLoginConfig{Users: func() []string { return []string{carol, dave} }})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// localRequest is a request to the picker from this machine.
func localRequest(method, target string, form url.Values) *http.Request {
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	r.RemoteAddr, r.Host = "127.0.0.1:50000", "localhost:8080"
	if method == http.MethodPost {
		r.Header.Set("Origin", "http://localhost:8080")
	}
	return r
}

func TestLocalLoginPick(t *testing.T) {
	t.Parallel()
	h := newPicker(t)
	next := page(carolLink)
	res := do(t, h, localRequest(http.MethodGet, pages.LoginPath+"?next="+url.QueryEscape(next), nil))
	if res.status != http.StatusOK {
		t.Fatalf("GET: status %d:\n%s", res.status, res.body)
	}
	for _, s := range []string{`value="carol@example.com"`, `value="dave@example.com"`, `name="next" value="` + next} {
		if !strings.Contains(res.body, s) {
			t.Errorf("the picker lacks %q:\n%s", s, res.body)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {"Carol@example.com"}, "next": {next}}))
	out := w.Result()
	checkHeaders(t, out.Header, "")
	if out.StatusCode != http.StatusSeeOther || out.Header.Get("Location") != next {
		t.Fatalf("POST: status %d, Location %q; want 303 to %q", out.StatusCode, out.Header.Get("Location"), next)
	}
	cookies := out.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %+v, want one", cookies)
	}
	c := cookies[0]
	type cookie struct {
		Name, Value, Path string
		HttpOnly, Secure  bool
		SameSite          http.SameSite
	}
	got := cookie{c.Name, c.Value, c.Path, c.HttpOnly, c.Secure, c.SameSite}
	want := cookie{pages.LocalUserCookie, carol, "/", true, false, http.SameSiteStrictMode}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cookie (-want, +got):\n%s", diff)
	}

	back := localRequest(http.MethodGet, next, nil)
	back.AddCookie(c)
	if email, ok := pages.LocalCookieCaller(back); !ok || email != carol {
		t.Errorf("LocalCookieCaller = %q, %v; want %q", email, ok, carol)
	}
	back.RemoteAddr = "203.0.113.9:443"
	if email, ok := pages.LocalCookieCaller(back); ok {
		t.Errorf("LocalCookieCaller from afar = %q, want nobody", email)
	}
}

func TestLocalLoginRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		req        func() *http.Request
		wantStatus int
	}{
		{name: "get_next_protocol_relative", wantStatus: http.StatusBadRequest,
			req: func() *http.Request {
				return localRequest(http.MethodGet, pages.LoginPath+"?next=//evil.example/x", nil)
			}},
		{name: "get_next_absolute", wantStatus: http.StatusBadRequest,
			req: func() *http.Request {
				return localRequest(http.MethodGet, pages.LoginPath+"?next="+url.QueryEscape("https://evil.example/"), nil)
			}},
		{name: "post_next_absolute", wantStatus: http.StatusBadRequest,
			req: func() *http.Request {
				return localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {carol}, "next": {"https://evil.example/"}})
			}},
		{name: "post_next_protocol_relative", wantStatus: http.StatusBadRequest,
			req: func() *http.Request {
				return localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {carol}, "next": {"//evil.example"}})
			}},
		{name: "post_next_backslash", wantStatus: http.StatusBadRequest,
			req: func() *http.Request {
				return localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {carol}, "next": {`/\evil.example`}})
			}},
		{name: "post_next_javascript", wantStatus: http.StatusBadRequest,
			req: func() *http.Request {
				return localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {carol}, "next": {"javascript:alert(1)"}})
			}},
		{name: "post_next_with_newline", wantStatus: http.StatusBadRequest,
			req: func() *http.Request {
				return localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {carol}, "next": {"/\n/evil.example"}})
			}},
		{name: "post_unknown_user", wantStatus: http.StatusBadRequest,
			req: func() *http.Request {
				return localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {mallory}, "next": {"/"}})
			}},
		{name: "post_foreign_origin", wantStatus: http.StatusForbidden,
			req: func() *http.Request {
				r := localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {carol}, "next": {"/"}})
				r.Header.Set("Origin", "http://evil.example")
				return r
			}},
		{name: "post_no_origin", wantStatus: http.StatusForbidden,
			req: func() *http.Request {
				r := localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {carol}, "next": {"/"}})
				r.Header.Del("Origin")
				return r
			}},
		{name: "get_not_from_loopback", wantStatus: http.StatusForbidden,
			req: func() *http.Request {
				r := localRequest(http.MethodGet, pages.LoginPath+"?next=/", nil)
				r.RemoteAddr = "192.0.2.10:4000"
				return r
			}},
		{name: "post_not_from_loopback", wantStatus: http.StatusForbidden,
			req: func() *http.Request {
				r := localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {carol}, "next": {"/"}})
				r.RemoteAddr = "192.0.2.10:4000"
				return r
			}},
		{name: "rebound_host_name", wantStatus: http.StatusForbidden,
			req: func() *http.Request {
				r := localRequest(http.MethodPost, pages.LoginPath, url.Values{"user": {carol}, "next": {"/"}})
				r.Host = "evil.example:8080"
				r.Header.Set("Origin", "http://evil.example:8080")
				return r
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			newPicker(t).ServeHTTP(w, tc.req())
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			checkHeaders(t, res.Header, string(body))
			if res.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", res.StatusCode, tc.wantStatus)
			}
			if loc := res.Header.Get("Location"); loc != "" {
				t.Errorf("redirected to %q", loc)
			}
			if len(res.Cookies()) != 0 {
				t.Errorf("set cookies %+v", res.Cookies())
			}
		})
	}
}

func TestLocalLoginNeedsUsers(t *testing.T) {
	t.Parallel()
	if _, err := pages.LocalLogin(pages.LocalLoginConfig{}); err == nil || !strings.Contains(err.Error(), "Users is required") {
		t.Errorf("LocalLogin() error = %v, want Users is required", err)
	}
}
