package main

import (
	"context"
	"fmt"
	"net/url"
)

// runEntitlements is `jit entitlements`: what the caller may request.
func runEntitlements(ctx context.Context, cmd *cmdEnv, args []string) error {
	project := cmd.fs.String("project", "", "only the entitlements that grant on this project")
	pos, err := parseFlags(cmd.fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected arguments: %q", pos)
	}
	c, err := cmd.g.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if *project != "" {
		q.Set("project", *project)
	}
	var l listingView
	raw, err := c.getJSON(ctx, "/v1/entitlements", q, &l)
	if err != nil {
		return err
	}
	if cmd.g.format == "json" {
		return printJSON(cmd.stdout, raw)
	}
	rows := make([][]string, 0, len(l.Entitlements))
	for _, e := range l.Entitlements {
		rows = append(rows, []string{e.ID, e.approval(), e.MinDuration + "–" + e.MaxDuration, e.Description})
	}
	if err := table(cmd.stdout, []string{"ID", "APPROVAL", "DURATION", "DESCRIPTION"}, rows); err != nil {
		return err
	}
	if l.Incomplete {
		// The catalog of eligible bindings is still being read.
		fmt.Fprintln(cmd.stderr, "jit: the listing is incomplete while eligible role bindings are read; ask again shortly, or pass --project")
	}
	return nil
}
