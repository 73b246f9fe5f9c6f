// Package schemas embeds the JSON Schemas of the pipeline's CloudEvent data,
// one file per event type, so the binary validates against exactly the
// files other systems subscribing to the events topic read.
package schemas

import "embed"

// FS holds <type>.json for every event type.
//
//go:embed *.json
var FS embed.FS
