package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/logging"
)

// TestSecurityEvent: a refusal becomes one WARNING line with Cloud
// Logging's special keys (docs/google-cloud.md §10: "severity", "logging.googleapis.com/labels"
// is a map of string to string) and never contains the token or the body.
func TestSecurityEvent(t *testing.T) {
	t.Parallel()
	trusted, _ := keys(t)
	v := newVerifier(t)
	secret := "TOP-SECRET-JUSTIFICATION"
	data := strings.Replace(body, "INC-42: database down", secret, 1)
	tok := sign(t, trusted, validClaims(body)) // signed for another body: tampered
	attrs := map[string]string{Attribute: tok, "source": "pagerduty"}
	_, err := v.Verify(t.Context(), []byte(data), attrs)

	var buf bytes.Buffer
	log := logging.New(&buf, slog.LevelInfo)
	if !SecurityEvent(t.Context(), log, err, "msg-123", attrs) {
		t.Fatalf("SecurityEvent(%v) = false, want true for a refusal", err)
	}
	line := buf.String()
	if strings.Count(line, "\n") != 1 {
		t.Fatalf("want one line, got %q", line)
	}
	for _, leak := range []string{tok, strings.Split(tok, ".")[1], strings.Split(tok, ".")[2], secret, "pagerduty"} {
		if strings.Contains(line, leak) {
			t.Errorf("the log line contains %q", leak)
		}
	}
	var got struct {
		Severity       string            `json:"severity"`
		Message        string            `json:"message"`
		Labels         map[string]string `json:"logging.googleapis.com/labels"`
		Detail         string            `json:"detail"`
		AttributeNames []string          `json:"attribute_names"`
		Source         struct {
			File string `json:"file"`
		} `json:"logging.googleapis.com/sourceLocation"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v: %s", err, line)
	}
	wantLabels := map[string]string{
		"event/type": "security",
		"event/id":   "envelope.refused",
		"reason":     "tampered",
		"issuer":     caller,
		"message_id": "msg-123",
	}
	if diff := cmp.Diff(wantLabels, got.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{Attribute, "source"}, got.AttributeNames); diff != "" {
		t.Errorf("attribute names (-want +got):\n%s", diff)
	}
	if got.Severity != "WARNING" || got.Detail == "" || !strings.Contains(got.Message, "tampered") {
		t.Errorf("severity %q, detail %q, message %q", got.Severity, got.Detail, got.Message)
	}
	if !strings.HasSuffix(got.Source.File, "security_test.go") {
		t.Errorf("source location %q, want the caller", got.Source.File)
	}
}

// TestSecurityEventIgnoresOtherErrors: transient errors and success are
// not security events, and the caller learns not to acknowledge them.
func TestSecurityEventIgnoresOtherErrors(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := logging.New(&buf, slog.LevelDebug)
	for _, err := range []error{nil, errors.New("keys down")} {
		if SecurityEvent(t.Context(), log, err, "m", nil) {
			t.Errorf("SecurityEvent(%v) = true", err)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("logged %q", buf.String())
	}
}
