package ledger

import (
	"errors"
	"fmt"
	"time"
)

// CheckClaim refuses what no claim of the notifier's journal can be: an
// empty key, or a lease that is over before it starts.
func CheckClaim(key string, lease time.Duration) error {
	var errs []error
	if key == "" {
		errs = append(errs, errors.New("empty key"))
	}
	if lease <= 0 {
		errs = append(errs, fmt.Errorf("lease %s is not positive", lease))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("failed to claim %q: %w", key, err)
	}
	return nil
}
