package source_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/jitpipeline/jit/internal/policy/source"
)

// smFake serves projects.secrets.versions.access the way the Secret Manager
// REST API does (the only call the loader makes):
//
//   - GET /v1/{name=projects/*/secrets/*/versions/*}:access, response
//     {name, payload: {data (base64), dataCrc32c (int64 as a JSON string)}}
//     [doc] https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access
//     and the generated client's SecretPayload (`json:"dataCrc32c,omitempty,string"`).
//   - `latest` "is an alias to the most recently created SecretVersion" [same doc],
//     whatever its state: accessing a DISABLED or DESTROYED version, through
//     `latest` or by number, fails with 400 FAILED_PRECONDITION "Secret Version
//     [projects/…/versions/N] is in DISABLED state." It does NOT fall back to an
//     older enabled version. [issue] google-github-actions/get-secretmanager-secrets#268,
//     external-secrets/external-secrets#4042 and #1951 (observed responses).
//   - Permission is checked first: 403 PERMISSION_DENIED "Permission
//     'secretmanager.versions.access' denied for resource '…' (or it may not exist)."
//   - Unknown secret, or one with no versions: 404 NOT_FOUND "Secret [projects/N/secrets/S]
//     not found or has no versions."
//   - Resolved names use the project number (believed from observed responses, not
//     verified in the docs; the loader treats the name as opaque either way).
//
// Wired through the real client with option.WithEndpoint + WithoutAuthentication
// (docs/google-cloud.md §11).
type smFake struct {
	mu      sync.Mutex
	numbers map[string]string // project ID -> project number
	secrets map[string][]smVersion
	denied  map[string]bool // secret IDs the caller may not access
	badCRC  bool            // serve a dataCrc32c that does not match
	noCRC   bool            // omit dataCrc32c
	calls   int
}

type smVersion struct {
	data  []byte
	state string // ENABLED, DISABLED, DESTROYED
}

func newSMFake(t *testing.T) (*smFake, []option.ClientOption) {
	t.Helper()
	f := &smFake{
		numbers: map[string]string{"acme-jit": "123456789012"},
		secrets: map[string][]smVersion{},
		denied:  map[string]bool{},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, []option.ClientOption{option.WithEndpoint(srv.URL + "/"), option.WithoutAuthentication()}
}

// add creates a new ENABLED version of secret and returns its number.
func (f *smFake) add(secret, data string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[secret] = append(f.secrets[secret], smVersion{data: []byte(data), state: "ENABLED"})
	return len(f.secrets[secret])
}

func (f *smFake) setState(secret string, version int, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[secret][version-1].state = state
}

// set changes the fake's switches under its lock.
func (f *smFake) set(fn func(f *smFake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *smFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/"), ":access")
	parts := strings.Split(name, "/")
	if r.Method != http.MethodGet || !ok || len(parts) != 6 || parts[0] != "projects" || parts[2] != "secrets" || parts[4] != "versions" {
		smError(w, http.StatusNotFound, "NOT_FOUND", "no such method "+r.Method+" "+r.URL.Path)
		return
	}
	project, secret, version := parts[1], parts[3], parts[5]
	if n, ok := f.numbers[project]; ok {
		project = n
	}
	if f.denied[secret] {
		smError(w, http.StatusForbidden, "PERMISSION_DENIED",
			fmt.Sprintf("Permission 'secretmanager.versions.access' denied for resource '%s' (or it may not exist).", name))
		return
	}
	versions := f.secrets[secret]
	secretName := "projects/" + project + "/secrets/" + secret
	if len(versions) == 0 {
		smError(w, http.StatusNotFound, "NOT_FOUND", "Secret ["+secretName+"] not found or has no versions.")
		return
	}
	n := len(versions) // latest: the most recently created, whatever its state
	if version != "latest" {
		var err error
		if n, err = strconv.Atoi(version); err != nil || n < 1 || n > len(versions) {
			smError(w, http.StatusNotFound, "NOT_FOUND", "Secret Version ["+secretName+"/versions/"+version+"] not found.")
			return
		}
	}
	v := versions[n-1]
	resolved := secretName + "/versions/" + strconv.Itoa(n)
	if v.state != "ENABLED" {
		smError(w, http.StatusBadRequest, "FAILED_PRECONDITION", "Secret Version ["+resolved+"] is in "+v.state+" state.")
		return
	}
	payload := map[string]any{"data": base64.StdEncoding.EncodeToString(v.data)}
	crc := int64(crc32.Checksum(v.data, crc32.MakeTable(crc32.Castagnoli)))
	if f.badCRC {
		crc++
	}
	if !f.noCRC {
		payload["dataCrc32c"] = strconv.FormatInt(crc, 10)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"name": resolved, "payload": payload}) // a failed write is the client's error
}

func smError(w http.ResponseWriter, code int, status, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}}) // a failed write is the client's error
}

func TestSecretManagerLoader(t *testing.T) {
	t.Parallel()
	const v = "projects/123456789012/secrets/jit-prod/versions/"
	for _, tc := range []struct {
		name        string
		setup       func(f *smFake)
		secret      string // full version name to access
		wantData    string
		wantVersion string
		wantCode    int  // googleapi error code, 0 for none
		wantVerErr  bool // a *source.VersionError naming wantVersion
	}{
		{
			name:   "latest_resolves_to_newest",
			setup:  func(f *smFake) { f.add("jit-prod", "one"); f.add("jit-prod", "two") },
			secret: "projects/acme-jit/secrets/jit-prod/versions/latest", wantData: "two", wantVersion: v + "2",
		},
		{
			name:   "pinned_version",
			setup:  func(f *smFake) { f.add("jit-prod", "one"); f.add("jit-prod", "two") },
			secret: "projects/acme-jit/secrets/jit-prod/versions/1", wantData: "one", wantVersion: v + "1",
		},
		{
			name:   "no_crc_in_response",
			setup:  func(f *smFake) { f.add("jit-prod", "one"); f.set(func(f *smFake) { f.noCRC = true }) },
			secret: "projects/acme-jit/secrets/jit-prod/versions/latest", wantData: "one", wantVersion: v + "1",
		},
		{
			// latest = most recently created; disabled does not fall back (see smFake).
			name: "newest_disabled_fails_precondition",
			setup: func(f *smFake) {
				f.add("jit-prod", "one")
				f.setState("jit-prod", f.add("jit-prod", "two"), "DISABLED")
			},
			secret: "projects/acme-jit/secrets/jit-prod/versions/latest", wantCode: http.StatusBadRequest,
		},
		{
			name:   "crc_mismatch_refuses_version",
			setup:  func(f *smFake) { f.add("jit-prod", "one"); f.set(func(f *smFake) { f.badCRC = true }) },
			secret: "projects/acme-jit/secrets/jit-prod/versions/latest", wantVersion: v + "1", wantVerErr: true,
		},
		{
			name:   "unknown_secret",
			setup:  func(*smFake) {},
			secret: "projects/acme-jit/secrets/jit-nope/versions/latest", wantCode: http.StatusNotFound,
		},
		{
			name:   "permission_denied",
			setup:  func(f *smFake) { f.add("jit-prod", "one"); f.set(func(f *smFake) { f.denied["jit-prod"] = true }) },
			secret: "projects/acme-jit/secrets/jit-prod/versions/latest", wantCode: http.StatusForbidden,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, opts := newSMFake(t)
			tc.setup(f)
			l, err := source.NewSecretManagerLoader(t.Context(), tc.secret, opts...)
			if err != nil {
				t.Fatalf("NewSecretManagerLoader: %v", err)
			}
			data, version, err := l.Load(t.Context())
			verr, isVerErr := errors.AsType[*source.VersionError](err)
			switch {
			case tc.wantVerErr:
				if !isVerErr || verr.Version != tc.wantVersion || !strings.Contains(err.Error(), "CRC32C") {
					t.Errorf("Load error = %v, want a VersionError for %s about CRC32C", err, tc.wantVersion)
				}
			case tc.wantCode != 0:
				ge, ok := errors.AsType[*googleapi.Error](err)
				if !ok || ge.Code != tc.wantCode {
					t.Errorf("Load error = %v, want googleapi code %d", err, tc.wantCode)
				}
				if isVerErr {
					t.Errorf("Load error %v is a VersionError; an API error must count as an outage", err)
				}
			default:
				if err != nil || string(data) != tc.wantData || version != tc.wantVersion {
					t.Errorf("Load = %q, %q, %v; want %q, %q", data, version, err, tc.wantData, tc.wantVersion)
				}
			}
		})
	}
}

// JIT Groups' flow end to end (docs/jit-access.md §3.8, §3.9): Terraform adds a
// new version of the secret jit-<env>; the source reads versions/latest. A
// broken version is refused once; the next good version is accepted; a
// disabled newest version keeps the last good one (an outage, not a refusal).
func TestSecretManagerSource(t *testing.T) {
	t.Parallel()
	f, opts := newSMFake(t)
	f.add("jit-prod", "good 1")
	l, err := source.NewSecretManagerLoader(t.Context(), "projects/acme-jit/secrets/jit-prod/versions/latest", opts...)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	var rej rejections
	logger, logs := newLogger()
	src, err := source.New(t.Context(), source.Config[doc]{
		Loader: l, Compile: newCompiler().Compile, Now: clk.Now, Logger: logger, OnReject: rej.OnReject,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	const v = "projects/123456789012/secrets/jit-prod/versions/"
	steps := []struct {
		name        string
		change      func()
		wantVersion string
		wantRej     []string
	}{
		{"unchanged", func() {}, v + "1", nil},
		{"broken_version_2", func() { f.add("jit-prod", "bad 2") }, v + "1", []string{v + "2"}},
		{"still_broken", func() {}, v + "1", []string{v + "2"}},
		{"fixed_version_3", func() { f.add("jit-prod", "good 3") }, v + "3", []string{v + "2"}},
		{"newest_disabled", func() { f.setState("jit-prod", f.add("jit-prod", "good 4"), "DISABLED") }, v + "3", []string{v + "2"}},
	}
	for _, st := range steps {
		st.change()
		clk.Advance(source.DefaultTTL)
		_, version, err := src.Current(t.Context())
		if err != nil || version != st.wantVersion {
			t.Errorf("%s: Current version = %q, %v; want %q", st.name, version, err, st.wantVersion)
		}
		var got []string
		for _, r := range rej.Get() {
			got = append(got, r.Version)
		}
		if strings.Join(got, ",") != strings.Join(st.wantRej, ",") {
			t.Errorf("%s: rejected versions = %v, want %v", st.name, got, st.wantRej)
		}
	}
	warns := logs.lines(t, "WARNING")
	if len(warns) != 1 || !strings.Contains(warns[0]["error"].(string), "DISABLED state") {
		t.Errorf("WARNING lines = %v, want one naming the DISABLED version", warns)
	}
	if st := src.Status(); st.LastError == nil || st.CheckedAt.Sub(epoch) != 5*source.DefaultTTL {
		t.Errorf("Status = %+v, want the outage recorded at the last check", st)
	}
}

func TestNewSecretManagerLoaderValidatesName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"", "projects/p/secrets/s", "projects//secrets/s/versions/1",
		"projects/p/locations/l/secrets/s/versions/1", "projects/p/secrets/s/versions/",
	} {
		if _, err := source.NewSecretManagerLoader(t.Context(), name, option.WithoutAuthentication()); err == nil {
			t.Errorf("NewSecretManagerLoader(%q) succeeded, want error", name)
		}
	}
}
