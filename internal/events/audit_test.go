package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/logging"
)

// TestAudit: one NOTICE line per transition, a readable message, and the
// string labels Cloud Logging lifts into LogEntry.labels (docs/google-cloud.md §10);
// label names after JIT Access (user, justification;
// docs/jit-access.md §1.10) and JIT Groups (event/type audit, event/id; §3.10).
func TestAudit(t *testing.T) {
	t.Parallel()
	d := activatedData()
	d.Approvers = []string{"user:bob@example.com", "group:dba@example.com"}
	e, err := New(TypeActivated, testGrantID+"-4", t0, d)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	Audit(t.Context(), logging.New(&buf, logging.LevelNotice), e, &d)
	var src struct {
		Source struct {
			Function string `json:"function"`
		} `json:"logging.googleapis.com/sourceLocation"`
	}
	if err := json.Unmarshal(buf.Bytes(), &src); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(src.Source.Function, ".TestAudit") {
		t.Errorf("source location %q is not Audit's caller", src.Source.Function)
	}
	got, _ := decodeLine(t, buf.String())
	want := map[string]any{
		"severity": "NOTICE",
		"message":  "grant g-abcdefghijklmnopqrst for prod.payments.db-admin by alice@example.com: ACTIVE (activated)",
		"logging.googleapis.com/labels": map[string]any{
			"event/type":    "audit",
			"event/id":      "grant.activated",
			"event_type":    "dev.jitpipeline.grant.activated.v1",
			"event_id":      "g-abcdefghijklmnopqrst-4",
			"grant_id":      "g-abcdefghijklmnopqrst",
			"entitlement":   "prod.payments.db-admin",
			"user":          "alice@example.com",
			"state":         "ACTIVE",
			"actor":         "grant-function",
			"justification": "INC-1234",
			"duration":      "PT1H",
			"approvers":     "user:bob@example.com,group:dba@example.com",
			"start_time":    "2026-01-02T03:04:05Z",
			"end_time":      "2026-01-02T04:04:05Z",
		},
		"privileges": []any{map[string]any{"resource": "projects/payments-prod", "role": "roles/cloudsql.admin"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit line (-want +got):\n%s", diff)
	}
}

// TestAuditCommandHidesCapabilities: callback URLs resume a workflow
// execution (docs/google-cloud.md §4, callbacks): whoever reads the logs must not get
// them. The data is decoded from the event when not given.
func TestAuditCommandHidesCapabilities(t *testing.T) {
	t.Parallel()
	e, err := New(TypeActivationRequested, "exec-1-activation", t0, Data{
		GrantID: testGrantID, Entitlement: "prod.payments.db-admin", Requester: "alice@example.com",
		State: grant.Activating, Privileges: testPriv,
		CallbackURL:    "https://workflowexecutions.googleapis.com/v1/x/callbacks/SECRET-1",
		EndCallbackURL: "https://workflowexecutions.googleapis.com/v1/x/callbacks/SECRET-2",
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	Audit(t.Context(), logging.New(&buf, logging.LevelNotice), e, nil)
	got, raw := decodeLine(t, buf.String())
	if strings.Contains(raw, "SECRET") || strings.Contains(raw, "callbacks") {
		t.Errorf("audit line leaks a callback URL: %s", raw)
	}
	want := map[string]any{
		"severity": "NOTICE",
		"message":  "grant g-abcdefghijklmnopqrst for prod.payments.db-admin by alice@example.com: ACTIVATING (activation.requested)",
		"logging.googleapis.com/labels": map[string]any{
			"event/type":  "audit",
			"event/id":    "activation.requested",
			"event_type":  "dev.jitpipeline.activation.requested.v1",
			"event_id":    "exec-1-activation",
			"grant_id":    "g-abcdefghijklmnopqrst",
			"entitlement": "prod.payments.db-admin",
			"user":        "alice@example.com",
			"state":       "ACTIVATING",
		},
		"privileges": []any{map[string]any{"resource": "projects/payments-prod", "role": "roles/cloudsql.admin"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit line (-want +got):\n%s", diff)
	}
}

// TestAuditDenied: the reason of a denial (and of a revocation) is logged.
func TestAuditDenied(t *testing.T) {
	t.Parallel()
	d := Data{
		GrantID: testGrantID, Entitlement: "prod.payments.db-admin", Requester: "alice@example.com",
		State: grant.Denied, Actor: "bob@example.com", Message: "use the read-only role",
	}
	e, err := New(TypeDenied, testGrantID+"-2", t0, d)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	Audit(t.Context(), logging.New(&buf, logging.LevelNotice), e, &d)
	got, _ := decodeLine(t, buf.String())
	want := map[string]any{
		"severity": "NOTICE",
		"message":  "grant g-abcdefghijklmnopqrst for prod.payments.db-admin by alice@example.com: DENIED (denied)",
		"logging.googleapis.com/labels": map[string]any{
			"event/type": "audit", "event/id": "grant.denied", "event_type": "dev.jitpipeline.grant.denied.v1",
			"event_id": "g-abcdefghijklmnopqrst-2", "grant_id": "g-abcdefghijklmnopqrst",
			"entitlement": "prod.payments.db-admin", "user": "alice@example.com", "state": "DENIED",
			"actor": "bob@example.com",
		},
		"detail": "use the read-only role",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit line (-want +got):\n%s", diff)
	}
}

// decodeLine checks there is exactly one JSON line, with a time and a
// source location, and returns it without those two (they vary).
func decodeLine(t *testing.T, out string) (map[string]any, string) {
	t.Helper()
	if n := strings.Count(out, "\n"); n != 1 {
		t.Fatalf("Audit wrote %d lines, want 1:\n%s", n, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{logging.KeyTime, logging.KeySourceLocation} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s in %s", k, out)
		}
		delete(m, k)
	}
	return m, out
}
