package api

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/lifecycle"
)

// TestDecode: a request body is read strictly (package jsonstrict), and a
// refusal is a 400 naming the field, in the API's error format; a body
// over the limit is a 413 and another media type a 415.
func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantField   string
	}{
		{"valid", "application/json", `{"entitlement":"prod","requestedDuration":"PT1H","justification":"x","inputs":{"ticket":"INC-1"}}`, 0, ""},
		{"no content type", "", `{"entitlement":"prod"}`, 0, ""},
		{"duplicate name", "application/json", `{"entitlement":"prod","entitlement":"prod-owner"}`, 400, "entitlement"},
		{"case-variant name", "application/json", `{"entitlement":"prod","Entitlement":"prod-owner"}`, 400, "Entitlement"},
		{"field only in another case", "application/json", `{"Entitlement":"prod-owner"}`, 400, "Entitlement"},
		{"duplicate in inputs", "application/json", `{"entitlement":"prod","inputs":{"ticket":"A","ticket":"B"}}`, 400, "inputs.ticket"},
		{"case variant in inputs", "application/json", `{"entitlement":"prod","inputs":{"ticket":"A","TICKET":"B"}}`, 400, "inputs.TICKET"},
		{"unknown field", "application/json", `{"entitlement":"prod","role":"roles/owner"}`, 400, "role"},
		{"two values", "application/json", `{"entitlement":"prod"} {"entitlement":"prod-owner"}`, 400, "body"},
		{"truncated", "application/json", `{"entitlement":`, 400, ""},
		{"wrong type", "application/json", `{"entitlement":7}`, 400, "entitlement"},
		{"too large", "application/json", `{"justification":"` + strings.Repeat("x", MaxBody) + `"}`, 413, "body"},
		{"not JSON", "text/plain", `{"entitlement":"prod"}`, 415, "Content-Type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/v1/grants", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			w := httptest.NewRecorder()
			var in lifecycle.RequestInput
			ok := decode(w, r, &in)
			if tt.wantStatus == 0 {
				if !ok {
					t.Fatalf("refused: %d %s", w.Code, w.Body)
				}
				return
			}
			if ok || w.Code != tt.wantStatus {
				t.Fatalf("decode = %v, status %d; want false, %d", ok, w.Code, tt.wantStatus)
			}
			var got struct {
				Error map[string]string `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("error body %q: %v", w.Body, err)
			}
			if got.Error["message"] == "" {
				t.Errorf("no message: %v", got.Error)
			}
			delete(got.Error, "message")
			want := map[string]string{"code": "INVALID_ARGUMENT"}
			if tt.wantField != "" {
				want["field"] = tt.wantField
			}
			if diff := cmp.Diff(want, got.Error); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
