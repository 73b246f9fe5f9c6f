package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestIsLoopbackHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"localhost", true},
		{"LocalHost", true},
		{"jit.example.com", false},
		{"192.0.2.1", false},
		{"localhost.example.com", false},
		{"127.0.0.1.nip.io", false},
		{"0.0.0.0", false},
		{"", false},
	} {
		if got := isLoopbackHost(tc.host); got != tc.want {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

// --as toward anything but loopback is bad usage, refused before any
// call: 192.0.2.1 (TEST-NET-1) would hang until a timeout if dialled.
func TestAsRefusedOffLoopback(t *testing.T) {
	t.Parallel()
	for _, api := range []string{"https://jit.example.com", "https://192.0.2.1", "http://192.0.2.1:8080", "https://localhost.example.com", "https://127.0.0.1.nip.io"} {
		start := time.Now()
		r := jit(t, "grants", "--as", "alice@example.com", "--api", api)
		if r.code != 2 || !strings.Contains(r.stderr, "loopback") {
			t.Errorf("--as with --api %s: exit %d, stderr %q; want 2 naming loopback", api, r.code, r.stderr)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("--as with --api %s took %s: it must refuse before any network call", api, d)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"frobnicate"},
		{"grants", "--bogus"},
		{"grants", "--view", "mine", "--as", "a@example.com"},
		{"grants", "--format", "yaml", "--as", "a@example.com"},
		{"request", "--as", "a@example.com"},
		{"request", "a", "b", "--reviewer", "x@example.com"},
		{"approve"},
		{"deny", "g1"},
		{"revoke", "g1"},
		{"export", "--format", "xml"},
		{"grants", "--api", "ftp://example.com"},
		{"grants", "--api", "http://jit.example.com"}, // an ID token over plain http
		{"approve", "g1", "--as", "a@example.com", "--approval-api", "https://pages.example.com"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("jit %q: exit %d, want 2; stderr:\n%s", args, code, stderr.String())
		}
	}
}

// recorded is what a fake API saw of one call.
type recorded struct {
	Method, Path, Query string
	Principal, Auth     string
	RequestedWith, Type string
	Body                string
}

// fakeAPI answers every call with status and body, and records the calls.
func fakeAPI(t *testing.T, status int, body string) (*httptest.Server, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var calls []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Debug-Principal"), r.Header.Get("Authorization"),
			r.Header.Get("X-Requested-With"), r.Header.Get("Content-Type"), string(b)})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body) //nolint:errcheck // test server
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), calls...)
	}
}

const aGrant = `{"id":"g1","entitlement":"e","requester":"alice@example.com","state":"DENIED","timeline":[]}`

// What each command sends: method, path, query, headers, body.
func TestRequestsSent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want recorded
	}{
		{[]string{"approve", "g1", "--reason", "fine"}, recorded{Method: "POST", Path: "/v1/grants/g1:approve", RequestedWith: "jit-cli", Type: "application/json", Body: `{"reason":"fine"}`}},
		{[]string{"deny", "g1", "--reason", "no"}, recorded{Method: "POST", Path: "/v1/grants/g1:deny", RequestedWith: "jit-cli", Type: "application/json", Body: `{"reason":"no"}`}},
		{[]string{"withdraw", "g1"}, recorded{Method: "POST", Path: "/v1/grants/g1:withdraw", RequestedWith: "jit-cli", Type: "application/json", Body: `{}`}},
		{[]string{"revoke", "g1", "--reason", "incident"}, recorded{Method: "POST", Path: "/v1/grants/g1:revoke", RequestedWith: "jit-cli", Type: "application/json", Body: `{"reason":"incident"}`}},
		{[]string{"grant", "g1"}, recorded{Method: "GET", Path: "/v1/grants/g1"}},
		{[]string{"grants", "--view", "all", "--state", "ACTIVE", "--entitlement", "e", "--requester", "bob@example.com"},
			recorded{Method: "GET", Path: "/v1/grants", Query: "entitlement=e&requester=bob%40example.com&state=ACTIVE&view=all"}},
		{[]string{"approvals"}, recorded{Method: "GET", Path: "/v1/grants", Query: "view=approvable"}},
		{[]string{"entitlements", "--project", "demo-project"}, recorded{Method: "GET", Path: "/v1/entitlements", Query: "project=demo-project"}},
		{[]string{"request", "e", "--duration", "PT5M", "--justification", "j", "--input", "ticket=T-1", "--input", "n:=3", "--reviewer", "bob@example.com"},
			recorded{Method: "POST", Path: "/v1/grants", RequestedWith: "jit-cli", Type: "application/json",
				Body: `{"entitlement":"e","inputs":{"n":3,"ticket":"T-1"},"justification":"j","requestedDuration":"PT5M","reviewers":["bob@example.com"]}`}},
		{[]string{"request", "a", "b", "--duration", "PT5M", "--justification", "j"},
			recorded{Method: "POST", Path: "/v1/grants:batchCreate", RequestedWith: "jit-cli", Type: "application/json",
				Body: `{"entitlements":["a","b"],"justification":"j","requestedDuration":"PT5M"}`}},
		{[]string{"export", "--format", "json", "--state", "ACTIVE"}, recorded{Method: "GET", Path: "/v1/grants:export", Query: "format=json&state=ACTIVE"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			body := aGrant
			if tc.args[0] == "grants" || tc.args[0] == "approvals" || (tc.args[0] == "request" && tc.args[2] == "b") {
				body = `{"grants":[` + aGrant + `]}`
			}
			if tc.args[0] == "entitlements" {
				body = `{"entitlements":[]}`
			}
			srv, calls := fakeAPI(t, http.StatusOK, body)
			var stdout, stderr bytes.Buffer
			args := append(tc.args, "--api", srv.URL, "--as", "alice@example.com")
			if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
			}
			want := tc.want
			want.Principal = "user:alice@example.com"
			got := calls()
			if want.Body != "" && len(got) == 1 {
				got[0].Body = compactJSON(t, got[0].Body)
			}
			if diff := cmp.Diff([]recorded{want}, got); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("body %q: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Without --as the ID token goes as a bearer token, and no debug header.
func TestIDTokenSent(t *testing.T) {
	srv, calls := fakeAPI(t, http.StatusOK, `{"grants":[]}`)
	t.Setenv("JIT_ID_TOKEN", "tok-123")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"grants", "--api", srv.URL}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	want := []recorded{{Method: "GET", Path: "/v1/grants", Auth: "Bearer tok-123"}}
	if diff := cmp.Diff(want, calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// A refusal prints `jit: CODE: field: message` and exits 1.
func TestAPIRefusalPrinted(t *testing.T) {
	t.Parallel()
	srv, _ := fakeAPI(t, http.StatusConflict, `{"error":{"code":"FAILED_PRECONDITION","field":"state","message":"not awaiting approval"}}`)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"approve", "g1", "--api", srv.URL, "--as", "carol@example.com"}, &stdout, &stderr)
	if code != 1 || stderr.String() != "jit: FAILED_PRECONDITION: state: not awaiting approval\n" {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// --wait on a grant that is already final exits 3 at once.
func TestWaitEndsNotActive(t *testing.T) {
	t.Parallel()
	srv, _ := fakeAPI(t, http.StatusOK, aGrant) // every answer: DENIED
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"request", "e", "--duration", "PT5M", "--justification", "j", "--wait", "--api", srv.URL, "--as", "a@example.com"}, &stdout, &stderr)
	if code != 3 || !strings.Contains(stderr.String(), "g1 DENIED") {
		t.Errorf("exit %d, stderr %q; want 3 naming g1 DENIED", code, stderr.String())
	}
}

// --wait gives up after --timeout with exit 4.
func TestWaitTimesOut(t *testing.T) {
	t.Parallel()
	srv, _ := fakeAPI(t, http.StatusOK, strings.Replace(aGrant, "DENIED", "APPROVAL_AWAITED", 1))
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"request", "e", "--duration", "PT5M", "--justification", "j", "--wait", "--timeout", "1200ms", "--api", srv.URL, "--as", "a@example.com"}, &stdout, &stderr)
	if code != 4 || !strings.Contains(stderr.String(), "timed out") {
		t.Errorf("exit %d, stderr %q; want 4", code, stderr.String())
	}
	// Not a terminal: plain lines, one per change, no carriage returns.
	if strings.Contains(stderr.String(), "\r") || strings.Count(stderr.String(), "waiting:") != 1 {
		t.Errorf("progress without a terminal: %q", stderr.String())
	}
}

// export -o writes the API's bytes to a file only others cannot read.
func TestExportToFile(t *testing.T) {
	t.Parallel()
	srv, _ := fakeAPI(t, http.StatusOK, "id,state\ng1,ACTIVE\n")
	out := filepath.Join(t.TempDir(), "grants.csv")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"export", "-o", out, "--api", srv.URL, "--as", "grace@example.com"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(out)
	if string(data) != "id,state\ng1,ACTIVE\n" || st.Mode().Perm() != 0o600 {
		t.Errorf("export file %q, mode %v", data, st.Mode().Perm())
	}
}

// approve and deny go to --approval-api when it is set (on Google Cloud
// the approval function serves them); the other commands do not.
func TestApprovalAPI(t *testing.T) {
	t.Parallel()
	approvalSrv, approvalCalls := fakeAPI(t, http.StatusOK, aGrant)
	intakeSrv, intakeCalls := fakeAPI(t, http.StatusOK, aGrant)
	for _, args := range [][]string{{"approve", "g1"}, {"deny", "g1", "--reason", "no"}, {"withdraw", "g1"}} {
		var stdout, stderr bytes.Buffer
		args = append(args, "--api", intakeSrv.URL, "--approval-api", approvalSrv.URL, "--as", "carol@example.com")
		if args[0] == "withdraw" {
			args = slices.Delete(args, 4, 6) // withdraw has no --approval-api
		}
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("jit %q: exit %d; stderr:\n%s", args, code, stderr.String())
		}
	}
	var got []string
	for _, c := range approvalCalls() {
		got = append(got, "approval "+c.Path)
	}
	for _, c := range intakeCalls() {
		got = append(got, "intake "+c.Path)
	}
	want := []string{"approval /v1/grants/g1:approve", "approval /v1/grants/g1:deny", "intake /v1/grants/g1:withdraw"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}
