// Command testsummary reads `go test -json` on stdin and prints what a
// non-verbose `go test` would (package results and the output of failing
// tests), then one final "skipped: …" summary with each skip message. It exits
// 1 if any test or package failed, so `make test` keeps go test's status.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() { os.Exit(summarize(os.Stdin, os.Stdout)) }

func summarize(r io.Reader, w io.Writer) int {
	failed := false
	buf := map[string][]string{} // output of each running test, keyed by package + test
	var skips []string           // "package: message", in order of first appearance
	counts := map[string]int{}   // how many tests were skipped with each
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(w, sc.Text()) // not an event (e.g. a build error): pass it on
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if e.Test != "" {
				buf[key] = append(buf[key], e.Output)
				continue
			}
			if o := strings.TrimSpace(e.Output); o == "PASS" || strings.HasPrefix(o, "=== ") || strings.HasPrefix(o, "--- PASS") {
				continue
			}
			fmt.Fprint(w, e.Output)
		case "fail":
			failed = true
			for _, l := range buf[key] {
				fmt.Fprint(w, l)
			}
			delete(buf, key)
		case "skip":
			if e.Test != "" {
				var msg []string
				for _, l := range buf[key] {
					l = strings.TrimSpace(l)
					if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
						continue
					}
					msg = append(msg, l)
				}
				k := e.Package + ": " + strings.Join(msg, " ")
				if counts[k] == 0 {
					skips = append(skips, k)
				}
				counts[k]++
			}
			delete(buf, key)
		case "pass":
			delete(buf, key)
		}
	}
	if len(skips) == 0 {
		fmt.Fprintln(w, "skipped: none")
	} else {
		n := 0
		for _, c := range counts {
			n += c
		}
		fmt.Fprintf(w, "skipped: %d test(s):\n", n)
		for _, s := range skips {
			fmt.Fprintf(w, "  %s (%d)\n", s, counts[s])
		}
	}
	if failed {
		return 1
	}
	return 0
}
