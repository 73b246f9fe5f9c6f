package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// printJSON prints the API's JSON as it came, indented: --format=json is
// for scripts, which should see the API's fields, not the CLI's choice.
func printJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("the API's response is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// table writes rows under a header (none if nil), in aligned columns.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header != nil {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, r := range rows {
		for i, cell := range r {
			// A tab or newline in a description would break the columns.
			r[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(cell)
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// timeLeft is what remains of an ACTIVE grant, to the second; "-" for any
// other state or an end already passed.
func timeLeft(g *grantView, now time.Time) string {
	if g.State != "ACTIVE" || g.EndTime == nil {
		return "-"
	}
	left := g.EndTime.Sub(now).Round(time.Second)
	if left <= 0 {
		return "-"
	}
	return left.String()
}

// shortTime is a time in the reader's zone, to the minute.
func shortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// longTime is a time in the reader's zone, to the second, with the zone.
func longTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
