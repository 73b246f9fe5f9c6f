package mailbox_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jitpipeline/jit/internal/local/mailbox"
)

func get(t *testing.T, h http.Handler, target string, header http.Header) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawJSON keeps the wire form of the messages, to check field names.
type rawJSON struct {
	Messages []map[string]any `json:"messages"`
}

func TestPageJSON(t *testing.T) {
	t.Parallel()
	mb := open(t, mailbox.Config{})
	mustSend(t, mb, "jit@pipeline.example", []string{"bob@example.com"}, approvalMail())
	mustSend(t, mb, "jit@pipeline.example", []string{"dave@example.com"}, "From: jit@pipeline.example\nTo: dave@example.com\nSubject: second\n\nhi\n")

	for _, tc := range []struct {
		name   string
		target string
		header http.Header
	}{
		{"format_param", "/local/mail?format=json", nil},
		{"accept_header", "/local/mail", http.Header{"Accept": {"text/html;q=0.5, application/json"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := get(t, mb, tc.target, tc.header)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			text := body(t, resp)
			var got struct {
				Messages []mailbox.Message `json:"messages"`
			}
			if err := json.Unmarshal([]byte(text), &got); err != nil {
				t.Fatal(err)
			}
			all := mb.Messages()
			want := []mailbox.Message{all[1], all[0]} // newest first
			if diff := cmp.Diff(want, got.Messages); diff != "" {
				t.Errorf("messages (-want, +got):\n%s", diff)
			}
			var raw rawJSON
			if err := json.Unmarshal([]byte(text), &raw); err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range raw.Messages[1] {
				keys = append(keys, k)
			}
			wantKeys := []string{"cc", "from", "html", "id", "inReplyTo", "links", "messageId", "references", "subject", "text", "time", "to"}
			if diff := cmp.Diff(wantKeys, keys, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("JSON field names (-want, +got):\n%s", diff)
			}
			if ts, _ := raw.Messages[1]["time"].(string); !strings.HasSuffix(ts, "Z") || !strings.Contains(ts, "T") {
				t.Errorf("time %q is not RFC 3339 UTC", ts)
			}
		})
	}
}

func TestPageEmptyJSONIsAList(t *testing.T) {
	t.Parallel()
	mb := open(t, mailbox.Config{})
	if got := strings.TrimSpace(body(t, get(t, mb, "/local/mail?format=json", nil))); got != "{\n  \"messages\": []\n}" {
		t.Errorf("empty mailbox JSON = %q", got)
	}
}

func TestPageHTMLEscapesAndLinks(t *testing.T) {
	t.Parallel()
	mb := open(t, mailbox.Config{})
	mustSend(t, mb, "jit@pipeline.example", []string{"bob@example.com"}, approvalMail())
	mustSend(t, mb, "evil@example.com", []string{"bob@example.com"}, `From: <evil@example.com>
To: bob@example.com
Subject: <script>alert("subject")</script>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=x

--x
Content-Type: text/plain

</pre><script>alert("text")</script> https://jit.example/ok
--x
Content-Type: text/html

<script>alert("html")</script><img src=x onerror=alert(1)><a href="https://jit.example/h?a=1&amp;b=<2>">h</a>
--x--
`)
	resp := get(t, mb, "/local/mail", nil)
	page := body(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, page)
	}
	wantHeaders := map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	}
	for k, v := range wantHeaders {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "style-src 'sha256-", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q allows too much", csp)
	}
	for _, bad := range []string{"<script", "<img", "</pre><script"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains unescaped %q:\n%s", bad, page)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt;",
		"&lt;/pre&gt;&lt;script&gt;alert(&#34;text&#34;)",
		"<summary>HTML part (source, not rendered)</summary><pre>&lt;script&gt;alert(&#34;html&#34;)",
		`<a href="https://jit.example/approve?grant=g-1&amp;event=e-2" rel="noreferrer noopener">`,
		`<a href="https://jit.example/grants/g-1" rel="noreferrer noopener">`,
		`<a href="https://jit.example/ok" rel="noreferrer noopener">`,
		`<a href="https://jit.example/h?a=1&amp;b=%3c2%3e" rel="noreferrer noopener">`,
		"Approval needed: café ☕ roles/owner",
		`<a href="?to=bob%40example.com">bob@example.com</a>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Index(page, "alert(&#34;subject&#34;)") > strings.Index(page, "Approval needed") {
		t.Error("page is not newest first")
	}
	if strings.Contains(page, `href="javascript:`) {
		t.Error("page carries a javascript: link")
	}
}

func TestPageToFilter(t *testing.T) {
	t.Parallel()
	mb := open(t, mailbox.Config{})
	mustSend(t, mb, "jit@pipeline.example", []string{"bob@example.com"}, "From: jit@pipeline.example\nTo: Bob <Bob@Example.com>\nSubject: to-bob\n\nx\n")
	mustSend(t, mb, "jit@pipeline.example", []string{"carol@example.com", "bob@example.com"}, "From: jit@pipeline.example\nTo: carol@example.com\nCc: bob@example.com\nSubject: cc-bob\n\nx\n")
	mustSend(t, mb, "jit@pipeline.example", []string{"dave@example.com"}, "From: jit@pipeline.example\nTo: dave@example.com\nSubject: to-dave\n\nbob@example.com\n")
	mustSend(t, mb, "bob@example.com", []string{"erin@example.com"}, "From: bob@example.com\nTo: erin@example.com\nSubject: from-bob\n\nx\n")

	tests := []struct {
		name, to string
		want     []string
	}{
		{"to_or_cc_any_case", "BOB@example.COM", []string{"cc-bob", "to-bob"}},
		{"one", "dave@example.com", []string{"to-dave"}},
		{"nobody", "zoe@example.com", nil},
		{"not_a_prefix", "ob@example.com", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got struct{ Messages []mailbox.Message }
			if err := json.Unmarshal([]byte(body(t, get(t, mb, "/local/mail?format=json&to="+tc.to, nil))), &got); err != nil {
				t.Fatal(err)
			}
			var subjects []string
			for _, m := range got.Messages {
				subjects = append(subjects, m.Subject)
			}
			if diff := cmp.Diff(tc.want, subjects); diff != "" {
				t.Errorf("subjects for ?to=%s (-want, +got):\n%s", tc.to, diff)
			}
		})
	}

	page := body(t, get(t, mb, "/local/mail?to=dave@example.com", nil))
	if !strings.Contains(page, "to-dave") || strings.Contains(page, "to-bob") {
		t.Errorf("HTML page ignores ?to=:\n%s", page)
	}
	if resp := get(t, mb, "/local/mail?to=not-an-address", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("?to=not-an-address: status %d, want 400", resp.StatusCode)
	}
}

func TestPageMethods(t *testing.T) {
	t.Parallel()
	mb := open(t, mailbox.Config{})
	w := httptest.NewRecorder()
	mb.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/local/mail", strings.NewReader("x")))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: status %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	if got := body(t, get(t, mb, "/local/mail", nil)); !strings.Contains(got, "No mail yet.") {
		t.Errorf("empty page:\n%s", got)
	}
}
