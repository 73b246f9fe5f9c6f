// Package workflows embeds the Cloud Workflows definitions, so the local
// runner executes exactly the files that are deployed to Google Cloud.
package workflows

import "embed"

// FS holds every *.yaml definition of this folder.
//
//go:embed *.yaml
var FS embed.FS
