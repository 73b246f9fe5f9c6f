package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// runExport is `jit export`: GET /v1/grants:export (EXPORT permission),
// streamed to stdout or a file.
func runExport(ctx context.Context, cmd *cmdEnv, args []string) error {
	fs := cmd.fs
	format := fs.String("format", "csv", "csv or json")
	state := fs.String("state", "", "only grants in this state")
	out := fs.String("o", "", "write to this file (mode 0600) instead of stdout")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected arguments: %q", pos)
	}
	if *format != "csv" && *format != "json" {
		return usageErrorf("--format must be csv or json, got %q", *format)
	}
	c, err := cmd.g.client()
	if err != nil {
		return err
	}
	// An export of a large ledger may take longer than the client's usual
	// bound on one call; ^C still ends it.
	c.http.Timeout = 30 * time.Minute
	q := url.Values{"format": {*format}}
	if *state != "" {
		q.Set("state", *state)
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/grants:export", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if *out == "" {
		if _, err := io.Copy(cmd.stdout, resp.Body); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		return nil
	}
	// Created only once the API has said yes: a refusal leaves no empty
	// file behind. 0600: an export names people and their reasons.
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export to %s: %w", *out, err)
	}
	return nil
}
