package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// `jit local -h` prints the flags and succeeds: asking for help is not an error.
func TestLocalHelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"local", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("jit local -h: exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
}

// The start line names the URL and a command that works against it.
func TestStartLine(t *testing.T) {
	got := startLine("9090", "/tmp/jit")
	for _, want := range []string{"http://127.0.0.1:9090", "/tmp/jit", "curl -s localhost:9090/v1/entitlements"} {
		if !strings.Contains(got, want) {
			t.Errorf("startLine = %q, want it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "\n") {
		t.Errorf("startLine = %q: want one line", got)
	}
}
