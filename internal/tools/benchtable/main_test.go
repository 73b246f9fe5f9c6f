package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line    string
		name    string
		metrics map[string]float64
		ok      bool
	}{
		{"BenchmarkTableCriticalPath-2   \t       1\t 895242417 ns/op\t        22.76 active-ms\t        11.40 ratio", "BenchmarkTableCriticalPath",
			map[string]float64{"ns/op": 895242417, "active-ms": 22.76, "ratio": 11.40}, true},
		{"BenchmarkTableColdStart/function=intake-8 1 5 ns/op 1.2 start-ratio", "BenchmarkTableColdStart/function=intake", map[string]float64{"ns/op": 5, "start-ratio": 1.2}, true},
		{"BenchmarkX 1 abc ns/op", "", nil, false},
		{"PASS", "", nil, false},
		{"ok  \tgithub.com/x\t1.2s", "", nil, false},
	} {
		name, metrics, ok := parse(tc.line)
		if ok != tc.ok || name != tc.name || !cmp.Equal(metrics, tc.metrics) {
			t.Errorf("parse(%q) = %q, %v, %v; want %q, %v, %v", tc.line, name, metrics, ok, tc.name, tc.metrics, tc.ok)
		}
	}
}

// The table judges the median against the goal, per matching benchmark,
// and says which rows did not run.
func TestTable(t *testing.T) {
	t.Parallel()
	samples := map[string]map[string][]float64{
		"BenchmarkTableCriticalPath": {"ratio": {9, 3, 4}, "active-ms": {8, 9, 10}, "ref-rmw-ms": {2, 2, 2}},
		"BenchmarkTableIntake":       {"post-ratio": {0.2, 0.4, 0.5}, "get-ratio": {0.6, 0.6, 0.7}},
	}
	var out bytes.Buffer
	table(&out, samples, 3)
	got := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		"Request→ACTIVE ÷ one IAM read-modify-write TableCriticalPath <= 1.50 3.00 4.00 9.00 NO 9.00 active-ms, 2.00 ref-rmw-ms",
		"POST /v1/grants ÷ one-durable-commit handler (req/s) TableIntake >= 0.30 0.20 0.40 0.50 yes",
		"Grants per IAM write, 200 concurrent activations by 200 writers TableWritersAcrossInstances >= 10.0 not run",
		"IAM write, 1,000 ÷ 10 bindings (local) TableIAMWrite — not run",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}
