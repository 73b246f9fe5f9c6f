//go:build !unix

package durable

import "os"

// lockFile is a no-op where flock is not available: the embedded cloud is
// meant for Linux and macOS.
func lockFile(*os.File) error { return nil }
