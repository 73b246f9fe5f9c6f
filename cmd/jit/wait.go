package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// pollEvery is how often --wait reads the grants: activation takes
// seconds, and each read is one cheap GET.
const pollEvery = 500 * time.Millisecond

// waitForActive polls the grants until all are ACTIVE (nil), one reaches
// a state from which it will not become ACTIVE (exit 3), or timeout
// passes (exit 4). Progress goes to stderr: one line, rewritten in place
// on a terminal, a new line per change otherwise (logs of CI jobs).
func waitForActive(ctx context.Context, c *client, cmd *cmdEnv, ids []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := &progress{w: cmd.stderr, tty: isTerminal(cmd.stderr)}
	start := time.Now()
	states := make([]string, len(ids))
	raws := make([][]byte, len(ids))
	ends := make([]*time.Time, len(ids))
	for {
		done := true
		var ended []string
		for i, id := range ids {
			if states[i] == "ACTIVE" || finalState(states[i]) {
				if states[i] != "ACTIVE" {
					ended = append(ended, id+" "+states[i])
				}
				continue
			}
			var g grantView
			raw, err := c.getJSON(ctx, grantPath(id, ""), nil, &g)
			if err != nil {
				if ctx.Err() != nil {
					break // the deadline or ^C, reported below
				}
				p.end()
				return err
			}
			states[i], raws[i], ends[i] = g.State, raw, g.EndTime
			switch {
			case g.State == "ACTIVE":
			case finalState(g.State):
				ended = append(ended, id+" "+g.State)
			default:
				done = false
			}
		}
		if ctx.Err() != nil {
			p.end()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &exitError{code: exitTimeout, msg: fmt.Sprintf("timed out after %s waiting for %s (%s); the request stands: jit grant ID shows it", timeout, strings.Join(ids, ", "), strings.Join(states, ", "))}
			}
			return fmt.Errorf("interrupted while waiting for %s; the request stands: jit grant ID shows it", strings.Join(ids, ", "))
		}
		p.show(progressLine(ids, states, time.Since(start)))
		if len(ended) > 0 && allSettled(states) {
			p.end()
			printFinal(cmd, raws, ids, states, ends)
			return &exitError{code: exitNotActive, msg: "not ACTIVE: " + strings.Join(ended, ", ")}
		}
		if done {
			p.end()
			printFinal(cmd, raws, ids, states, ends)
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(pollEvery):
		}
	}
}

// allSettled reports whether no grant is still on its way.
func allSettled(states []string) bool {
	for _, s := range states {
		if s != "ACTIVE" && !finalState(s) {
			return false
		}
	}
	return true
}

func progressLine(ids, states []string, elapsed time.Duration) string {
	parts := make([]string, len(ids))
	for i := range ids {
		parts[i] = ids[i] + " " + orDash(states[i])
	}
	return fmt.Sprintf("waiting: %s (%s)", strings.Join(parts, ", "), elapsed.Round(time.Second))
}

// printFinal prints the grants as they ended: the API's JSON with
// --format=json (one document per grant), else one line each: ID, state
// and, for an ACTIVE grant, its end.
func printFinal(cmd *cmdEnv, raws [][]byte, ids, states []string, ends []*time.Time) {
	for i := range ids {
		if cmd.g.format == "json" && raws[i] != nil {
			printJSON(cmd.stdout, raws[i]) //nolint:errcheck // stdout
			continue
		}
		line := ids[i] + " " + states[i]
		if states[i] == "ACTIVE" && ends[i] != nil {
			line += " until " + longTime(*ends[i])
		}
		fmt.Fprintln(cmd.stdout, line)
	}
}

// progress is the one progress line of --wait.
type progress struct {
	w    io.Writer
	tty  bool
	last string
	open bool // a line without its newline is on the terminal
}

func (p *progress) show(line string) {
	if !p.tty {
		// Without a terminal, a line per change: the elapsed time alone
		// is no news.
		key, _, _ := strings.Cut(line, " (")
		if key == p.last {
			return
		}
		p.last = key
		fmt.Fprintln(p.w, line)
		return
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	p.open = true
}

func (p *progress) end() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
