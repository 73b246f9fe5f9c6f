package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/lifecycle"
)

// Each kind of the services' refusals has its status here; the body
// carries the code, field and message; anything else is a 500 that says
// nothing of the cause.
func TestFailMapsKindsToStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
		body   map[string]any
	}{
		{&lifecycle.Error{Kind: lifecycle.ErrInvalid, Field: "reason", Message: "m"}, 400, map[string]any{"code": "INVALID_ARGUMENT", "field": "reason", "message": "m"}},
		{&lifecycle.Error{Kind: lifecycle.ErrNotFound, Field: "id", Message: "m"}, 404, map[string]any{"code": "NOT_FOUND", "field": "id", "message": "m"}},
		{&lifecycle.Error{Kind: lifecycle.ErrForbidden, Message: "m"}, 403, map[string]any{"code": "PERMISSION_DENIED", "message": "m"}},
		{fmt.Errorf("wrapped: %w", &lifecycle.Error{Kind: lifecycle.ErrConflict, Message: "m"}), 409, map[string]any{"code": "FAILED_PRECONDITION", "message": "m"}},
		{&lifecycle.Error{Kind: lifecycle.ErrUnauthenticated, Message: "m"}, 401, map[string]any{"code": "UNAUTHENTICATED", "message": "m"}},
		{&lifecycle.Error{Kind: errors.New("unmapped"), Message: "secret"}, 500, map[string]any{"code": "INTERNAL", "message": "internal error; see the logs"}},
		{errors.New("ledger down"), 500, map[string]any{"code": "INTERNAL", "message": "internal error; see the logs"}},
	} {
		t.Run(fmt.Sprint(tc.status, tc.err), func(t *testing.T) {
			t.Parallel()
			h := newHandler(nil, nil, LocalAuthenticator{}, allRoutes, nil)
			rec := httptest.NewRecorder()
			h.fail(rec, httptest.NewRequest(http.MethodGet, "/v1/grants", nil), tc.err)
			var got struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			if diff := cmp.Diff(tc.body, got.Error); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}
