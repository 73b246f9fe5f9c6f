package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/logging"
)

type fakeIAP struct{ who *auth.Identity }

func (f fakeIAP) Identify(*http.Request) (*auth.Identity, error) {
	if f.who == nil {
		return nil, errors.New("no assertion")
	}
	return f.who, nil
}

func (f fakeIAP) Caller(r *http.Request) (string, error) {
	who, err := f.Identify(r)
	if err != nil {
		return "", err
	}
	return who.Email, nil
}

// Device id and access levels from IAP's context-aware access go into the
// audit record of every changing call, with its outcome; reads and
// unauthenticated calls write none.
func TestAuditRecordCarriesDeviceContext(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	who := &auth.Identity{Email: "alice@example.com", DeviceID: "dev-42", AccessLevels: []string{"accessPolicies/1/accessLevels/corp"}}
	h := newHandler(nil, nil, fakeIAP{who: who}, allRoutes, logging.New(&buf, logging.LevelNotice))

	// Refused for want of X-Requested-With: audited, with the status.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/grants", strings.NewReader(`{}`)))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d", rec.Code)
	}
	var line struct {
		Severity string            `json:"severity"`
		Labels   map[string]string `json:"logging.googleapis.com/labels"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("audit line %q: %v", buf.String(), err)
	}
	want := map[string]string{
		"event/type": "audit", "event/id": "api.call", "user": "alice@example.com", "device_id": "dev-42",
		"access_levels": "accessPolicies/1/accessLevels/corp", "method": "POST", "path": "/v1/grants", "status": "403",
	}
	if diff := cmp.Diff(want, line.Labels); diff != "" || line.Severity != "NOTICE" {
		t.Errorf("audit labels (-want +got):\n%s (severity %s)", diff, line.Severity)
	}

	buf.Reset()
	anon := newHandler(nil, nil, fakeIAP{}, allRoutes, logging.New(&buf, logging.LevelNotice))
	rec = httptest.NewRecorder()
	anon.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/grants", strings.NewReader(`{}`)))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("unauthenticated: status %d", rec.Code)
	}
	// A refused changing call is audited too, with no user and the reason.
	var refused struct {
		Labels map[string]string `json:"logging.googleapis.com/labels"`
	}
	if err := json.Unmarshal(buf.Bytes(), &refused); err != nil {
		t.Fatalf("refused-call audit line %q: %v", buf.String(), err)
	}
	if refused.Labels["user"] != "" || refused.Labels["auth_error"] == "" || refused.Labels["status"] != "401" {
		t.Errorf("refused-call audit labels %v", refused.Labels)
	}
	for k, v := range SecurityHeaders {
		if rec.Header().Get(k) != v {
			t.Errorf("header %s missing on a refusal", k)
		}
	}
}
