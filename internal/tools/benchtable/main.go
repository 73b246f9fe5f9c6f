// Command benchtable is `make bench`: it runs every BenchmarkTable*
// benchmark of the module -count times and prints one table, a row per
// goal of docs/performance.md, each a ratio against a reference measured
// by the same benchmark in the same run (package benchref), with its
// minimum, median and maximum over the runs and whether the median meets
// the goal. The raw `go test` output is kept in -raw for benchstat.
//
// Usage: go run ./internal/tools/benchtable [-count 3] [-raw build/bench.txt] [-bench REGEXP] [packages]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// row is one line of the table: metric Metric of the benchmarks whose
// name (without the -GOMAXPROCS suffix) matches Bench.
type row struct {
	Measure string
	Bench   string // a regexp on the full benchmark name
	Metric  string
	// Goal: Op is "<=" or ">="; no Op means a figure shown for context.
	Op   string
	Goal float64
	// Detail lists metrics of the same benchmark shown beside the ratio.
	Detail []string
}

// rows is the table, in the order of issue 14's goals.
var rows = []row{
	// queue=none is the writers as they were, each coalescing only its own
	// calls: the figure before the shared queue, kept for comparison.
	{"Grants per IAM write, 200 concurrent activations by 200 writers", `^BenchmarkTableWritersAcrossInstances/`, "grants/IAM-write", ">=", 10, []string{"given-up", "ms/grant"}},
	{"  activations given up (of 200)", `^BenchmarkTableWritersAcrossInstances/`, "given-up", "<=", 0, nil},
	{"Request→ACTIVE ÷ one IAM read-modify-write", `^BenchmarkTableCriticalPath$`, "ratio", "<=", 1.5, []string{"active-ms", "ref-rmw-ms"}},
	{"POST /v1/grants ÷ one-durable-commit handler (req/s)", `^BenchmarkTableIntake$`, "post-ratio", ">=", 0.3, []string{"post-req/s", "ref-commit-req/s"}},
	{"GET /v1/entitlements ÷ no-op handler (req/s)", `^BenchmarkTableIntake$`, "get-ratio", ">=", 0.5, []string{"get-req/s", "ref-noop-req/s"}},
	{"Start to first answer ÷ hello-world binary", `^BenchmarkTableColdStart/`, "start-ratio", "<=", 1.5, []string{"start-ms", "ref-start-ms"}},
	{"Peak memory ÷ hello-world binary", `^BenchmarkTableColdStart/`, "mem-ratio", "<=", 2, []string{"peak-MiB", "ref-peak-MiB"}},
	{"Request→ACTIVE at 1,000 active grants ÷ the first", `^BenchmarkTableGrowth$`, "latency-ratio", "<=", 1.2, []string{"first-ms", "at-1000-ms"}},
	{"Memory at 1,000 active grants ÷ idle pipeline", `^BenchmarkTableGrowth$`, "mem-ratio", "<=", 2, []string{"idle-MiB", "at-1000-MiB"}},
	{"Policy evaluation, 10,000 ÷ 100 groups, VIEW restricted", `^BenchmarkTableEvaluate$`, "ratio-restricted", "<=", 3, nil},
	{"Policy evaluation, 10,000 ÷ 100 groups, VIEW open to all", `^BenchmarkTableEvaluate$`, "ratio-open", "<=", 3, nil},
	{"Cloud Tasks create at 1,000 tasks ÷ at 10 (local)", `^BenchmarkTableTasksCreate$`, "ratio", "<=", 1.5, []string{"us/op-10", "us/op-1000"}},
	{"Workflow step, long ÷ short execution (local)", `^BenchmarkTableWorkflowStep$`, "ratio", "<=", 1.5, nil},
	{"IAM write, 1,000 ÷ 10 bindings (local)", `^BenchmarkTableIAMWrite$`, "ratio", "", 0, nil},
}

// lineRE matches a benchmark result: name-procs, iterations, then value
// unit pairs.
var lineRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func main() {
	count := flag.Int("count", 3, "runs of each benchmark")
	raw := flag.String("raw", "build/bench.txt", "file for the raw go test output")
	bench := flag.String("bench", "^BenchmarkTable", "benchmarks to run")
	flag.Parse()
	pkgs := flag.Args()
	if len(pkgs) == 0 {
		pkgs = []string{"./..."}
	}
	if err := run(*count, *raw, *bench, pkgs, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(count int, raw, bench string, pkgs []string, out io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(raw), 0o750); err != nil {
		return err
	}
	rawf, err := os.Create(raw) //nolint:gosec // G304: the path is the developer's -raw flag
	if err != nil {
		return err
	}
	defer rawf.Close()
	// -p 1: one package's benchmarks at a time, so no two measures share
	// the cores.
	args := append([]string{"test", "-p", "1", "-run", "^$", "-bench", bench, "-benchtime", "1x", "-count", strconv.Itoa(count), "-timeout", "30m"}, pkgs...)
	cmd := exec.Command("go", args...) //nolint:gosec // G204: go test with the developer's own flags
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	samples := map[string]map[string][]float64{} // bench -> metric -> values
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(rawf, line)
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") || strings.HasPrefix(line, "panic:") {
			fmt.Fprintln(os.Stderr, line)
		}
		name, metrics, ok := parse(line)
		if !ok {
			continue
		}
		fmt.Fprintf(os.Stderr, "  %s\n", line)
		if samples[name] == nil {
			samples[name] = map[string][]float64{}
		}
		for m, v := range metrics {
			samples[name][m] = append(samples[name][m], v)
		}
	}
	waitErr := cmd.Wait()
	table(out, samples, count)
	if waitErr != nil {
		return fmt.Errorf("go test failed (see above and %s): %w", raw, waitErr)
	}
	return nil
}

// parse reads one result line.
func parse(line string) (string, map[string]float64, bool) {
	m := lineRE.FindStringSubmatch(line)
	if m == nil {
		return "", nil, false
	}
	f := strings.Fields(m[2])
	metrics := map[string]float64{}
	for i := 0; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		metrics[f[i+1]] = v
	}
	return m[1], metrics, true
}

func table(out io.Writer, samples map[string]map[string][]float64, count int) {
	names := make([]string, 0, len(samples))
	for n := range samples {
		names = append(names, n)
	}
	slices.Sort(names)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Measure\tBenchmark\tGoal\tMin\tMedian\tMax\tMet\tFigures (median)\n")
	for _, r := range rows {
		re := regexp.MustCompile(r.Bench)
		matched := false
		for _, n := range names {
			vs, ok := samples[n][r.Metric]
			if !re.MatchString(n) || !ok {
				continue
			}
			matched = true
			lo, mid, hi := stats(vs)
			goal, met := "—", ""
			if r.Op != "" {
				goal = r.Op + " " + num(r.Goal)
				met = "yes"
				if (r.Op == "<=" && mid > r.Goal) || (r.Op == ">=" && mid < r.Goal) {
					met = "NO"
				}
			}
			var detail []string
			for _, d := range r.Detail {
				if dv, ok := samples[n][d]; ok {
					_, m, _ := stats(dv)
					detail = append(detail, num(m)+" "+d)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Measure, strings.TrimPrefix(n, "Benchmark"), goal, num(lo), num(mid), num(hi), met, strings.Join(detail, ", "))
		}
		if !matched {
			goal := "—"
			if r.Op != "" {
				goal = r.Op + " " + num(r.Goal)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\tnot run\t\n", r.Measure, strings.TrimPrefix(strings.Trim(r.Bench, "^$/"), "Benchmark"), goal)
		}
	}
	tw.Flush()
	fmt.Fprintf(out, "(%d runs per benchmark; ratios are paired within a run: measure and reference in the same benchmark.)\n", count)
}

func stats(vs []float64) (lo, mid, hi float64) {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	mid = s[n/2]
	if n%2 == 0 {
		mid = (s[n/2-1] + s[n/2]) / 2
	}
	return s[0], mid, s[n-1]
}

func num(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.01:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
