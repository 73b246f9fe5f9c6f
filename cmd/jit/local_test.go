package main

import (
	"bytes"
	"context"
	"testing"
)

// `jit local -h` prints the flags and succeeds: asking for help is not an error.
func TestLocalHelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"local", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("jit local -h: exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
}
