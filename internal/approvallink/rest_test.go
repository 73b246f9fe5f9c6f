package approvallink

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	secretmanager "google.golang.org/api/secretmanager/v1"

	"github.com/jitpipeline/jit/internal/clock"
)

// TestRESTClient: the real client, aimed at smFake behind the REST
// surface (GET v1/{parent}/versions, paged, and GET v1/{name}:access),
// lists every page and passes errors on.
func TestRESTClient(t *testing.T) {
	t.Parallel()
	f := newSMFake()
	for i := range 3 {
		f.add(key32(byte(i + 1)))
	}
	f.setState("2", "DISABLED")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/v1/")
		var resp any
		var err error
		switch {
		case strings.HasSuffix(name, ":access"):
			resp, err = f.AccessSecretVersion(r.Context(), strings.TrimSuffix(name, ":access"))
		case strings.HasSuffix(name, "/versions"):
			var all []*secretmanager.SecretVersion
			all, err = f.ListSecretVersions(r.Context(), strings.TrimSuffix(name, "/versions"))
			// One version a page, to make the client follow the tokens.
			page := 0
			if tok := r.URL.Query().Get("pageToken"); tok != "" {
				page = int(tok[0] - '0')
			}
			if err == nil && page < len(all) {
				lr := &secretmanager.ListSecretVersionsResponse{Versions: all[page : page+1], TotalSize: int64(len(all))}
				if page+1 < len(all) {
					lr.NextPageToken = string(rune('0' + page + 1))
				}
				resp = lr
			}
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if ge := (*googleapi.Error)(nil); errors.As(err, &ge) {
			w.WriteHeader(ge.Code)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": ge.Code, "message": ge.Message}})
			return
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	client, err := NewSecretManagerClient(t.Context(), option.WithEndpoint(srv.URL+"/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	keys := &SecretManagerKeys{Client: client, Secret: "projects/acme-jit/secrets/approval-links", Clock: clock.NewManual(testNow)}
	got, err := keys.VerifyingKeys(t.Context())
	if err != nil {
		t.Fatalf("VerifyingKeys: %v", err)
	}
	want := map[string][]byte{"1": key32(1), "3": key32(3)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("VerifyingKeys (-want +got):\n%s", diff)
	}
	if kid, _, err := keys.SigningKey(t.Context()); err != nil || kid != "3" {
		t.Errorf("SigningKey = %q, %v; want 3", kid, err)
	}
	if _, err := client.AccessSecretVersion(t.Context(), "projects/acme-jit/secrets/approval-links/versions/2"); err == nil || !strings.Contains(err.Error(), "DISABLED") {
		t.Errorf("access to a disabled version: %v, want the service's refusal", err)
	}
}
