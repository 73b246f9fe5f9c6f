package jit

// Temporary: pins modules the pipeline issue's packages are being written
// against, so go.sum is complete while they land. Removed once they import them.
import (
	_ "cloud.google.com/go/firestore"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "modernc.org/sqlite"
)
