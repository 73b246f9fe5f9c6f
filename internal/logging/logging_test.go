package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// docs/google-cloud.md §10: severity, message, time and logging.googleapis.com/* keys
// are lifted into the LogEntry; severity names follow LogSeverity.
func TestCloudLoggingFieldNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug, "DEBUG"},
		{slog.LevelInfo, "INFO"},
		{LevelNotice, "NOTICE"},
		{slog.LevelWarn, "WARNING"},
		{slog.LevelError, "ERROR"},
		{slog.LevelError + 4, "CRITICAL"},
	} {
		var buf bytes.Buffer
		New(&buf, slog.LevelDebug).Log(t.Context(), tc.level, "hello", "grant_id", "g1")
		var got map[string]any
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("not one JSON object: %q: %v", buf.String(), err)
		}
		if diff := cmp.Diff(tc.want, got[KeySeverity]); diff != "" {
			t.Errorf("severity for %v (-want +got):\n%s", tc.level, diff)
		}
		for _, k := range []string{KeyMessage, KeyTime, KeySourceLocation, "grant_id"} {
			if _, ok := got[k]; !ok {
				t.Errorf("key %q missing from %s", k, buf.String())
			}
		}
		for _, k := range []string{"level", "msg", "source"} {
			if _, ok := got[k]; ok {
				t.Errorf("slog key %q not renamed in %s", k, buf.String())
			}
		}
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "notice": LevelNotice,
		"warning": slog.LevelWarn, "error": slog.LevelError, "bogus": slog.LevelInfo,
	} {
		if got := ParseLevel(in); got != want {
			t.Errorf("ParseLevel(%q) = %v, want %v", in, got, want)
		}
	}
}
