package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/jitpipeline/jit/internal/policy"
)

const policyUsage = `usage: jit policy lint [--format=text|json] FILE…

Checks policy documents and reports every issue with its code, line and
column. Exits 0 when all files are clean, 1 when any has an issue or cannot
be read, 2 on bad usage. Fit for a CI step in the policy repository.
`

func runPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "lint" {
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	fs := flag.NewFlagSet("policy lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "output format: text or json")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if (*format != "text" && *format != "json") || fs.NArg() == 0 {
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	type fileIssue struct {
		File string `json:"file"`
		policy.Issue
	}
	all := []fileIssue{}
	failed := false
	for _, path := range fs.Args() {
		data, err := os.ReadFile(path)
		if err != nil {
			// An unreadable file is a failure too, reported in the same shape.
			all = append(all, fileIssue{File: path, Issue: policy.Issue{Code: "FILE_INVALID", Line: 1, Column: 1, Scope: "file", Message: errors.Unwrap(err).Error()}})
			failed = true
			continue
		}
		for _, is := range policy.Lint(data) {
			all = append(all, fileIssue{File: path, Issue: is})
			failed = true
		}
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"issues": all}); err != nil {
			fmt.Fprintln(stderr, "jit policy lint:", err)
			return 1
		}
	} else {
		for _, is := range all {
			fmt.Fprintf(stdout, "%s:%d:%d: %s: %s [%s]\n", is.File, is.Line, is.Column, is.Code, is.Message, is.Scope)
		}
		if !failed {
			fmt.Fprintf(stdout, "%d file(s) clean\n", fs.NArg())
		}
	}
	if failed {
		return 1
	}
	return 0
}
