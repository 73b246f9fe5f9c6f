//go:build unix

package durable

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f for as long as f is open.
// Two writers appending to one journal would interleave records at their
// own offsets and tear each other's; a second process on the same data
// directory is refused instead. The kernel drops the lock when the process
// dies, kill -9 included.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) //nolint:gosec // G115: a file descriptor fits an int
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("%s is in use by another process or an open Journal", f.Name())
	}
	if err != nil {
		return fmt.Errorf("failed to lock %s: %w", f.Name(), err)
	}
	return nil
}
