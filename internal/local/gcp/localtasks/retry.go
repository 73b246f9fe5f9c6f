package localtasks

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultRetryConfig is the queue RetryConfig used when a queue is created
// without one (or leaves fields unset). The API only says "Cloud Tasks will
// pick the default" (docs/google-cloud.md §3, VERIFY); these are the values the Cloud
// console and `gcloud tasks queues describe` show for a new queue
// (max attempts 100, min backoff 0.1 s, max backoff 3600 s, 16 doublings,
// unlimited retry duration) — recalled, not verified against a source.
func DefaultRetryConfig() *cloudtaskspb.RetryConfig {
	return &cloudtaskspb.RetryConfig{
		MaxAttempts:      100,
		MaxRetryDuration: durationpb.New(0),
		MinBackoff:       durationpb.New(100 * time.Millisecond),
		MaxBackoff:       durationpb.New(time.Hour),
		MaxDoublings:     16,
	}
}

// retentionLimit is the maximum task retention: a task is deleted 31 days
// after creation whether or not it succeeded (docs/google-cloud.md §3, tasks/docs/quotas).
const retentionLimit = 31 * 24 * time.Hour

// validateRetryConfig checks a RetryConfig the way CreateQueue does; the
// messages are the real service's ([2nd] conformance golden, see names.go).
func validateRetryConfig(rc *cloudtaskspb.RetryConfig) error {
	if rc == nil {
		return nil
	}
	var errs []error
	if rc.GetMaxAttempts() < -1 {
		errs = append(errs, errors.New("RetryConfig.maxAttempts must be greater or equal to -1."))
	}
	if rc.GetMaxDoublings() < 0 {
		errs = append(errs, errors.New("RetryConfig.maxDoublings cannot be negative."))
	}
	for _, d := range []struct {
		name string
		v    *durationpb.Duration
	}{{"minBackoff", rc.GetMinBackoff()}, {"maxBackoff", rc.GetMaxBackoff()}, {"maxRetryDuration", rc.GetMaxRetryDuration()}} {
		if d.v == nil {
			continue
		}
		if err := d.v.CheckValid(); err != nil {
			errs = append(errs, errors.New("RetryConfig."+d.name+" is not a valid duration."))
		} else if d.v.AsDuration() < 0 {
			errs = append(errs, errors.New("RetryConfig."+d.name+" cannot be negative."))
		}
	}
	if rc.GetMinBackoff() != nil && rc.GetMaxBackoff() != nil && rc.GetMinBackoff().AsDuration() > rc.GetMaxBackoff().AsDuration() {
		errs = append(errs, errors.New("RetryConfig.minBackoff must be less than or equal to RetryConfig.maxBackoff."))
	}
	return errors.Join(errs...)
}

// mergeRetry fills the unset fields of rc from base. proto3 cannot tell an
// explicit 0 from unset, so max_attempts 0 and max_doublings 0 mean "unset"
// here, as they must in the real service.
func mergeRetry(rc, base *cloudtaskspb.RetryConfig) *cloudtaskspb.RetryConfig {
	out := proto.CloneOf(base)
	if rc == nil {
		return out
	}
	if rc.GetMaxAttempts() != 0 {
		out.MaxAttempts = rc.GetMaxAttempts()
	}
	if rc.GetMaxRetryDuration() != nil {
		out.MaxRetryDuration = rc.GetMaxRetryDuration()
	}
	if rc.GetMinBackoff() != nil {
		out.MinBackoff = rc.GetMinBackoff()
	}
	if rc.GetMaxBackoff() != nil {
		out.MaxBackoff = rc.GetMaxBackoff()
	}
	if rc.GetMaxDoublings() != 0 {
		out.MaxDoublings = rc.GetMaxDoublings()
	}
	if out.GetMinBackoff().AsDuration() > out.GetMaxBackoff().AsDuration() {
		out.MaxBackoff = out.GetMinBackoff() // a merged min above the default max
	}
	return out
}

// backoff is the delay before retry number n (n = 1 after the first failed
// attempt). It starts at min_backoff, doubles max_doublings times, then grows
// linearly by min_backoff·2^max_doublings, and is capped at max_backoff:
// with 10 s / 300 s / 3 doublings it gives 10, 20, 40, 80, 160, 240, 300, 300…
// (queue.pb.go RetryConfig.max_doublings, docs/google-cloud.md §3).
func backoff(rc *cloudtaskspb.RetryConfig, n int) time.Duration {
	minB, maxB := rc.GetMinBackoff().AsDuration(), rc.GetMaxBackoff().AsDuration()
	if n < 1 {
		n = 1
	}
	if minB <= 0 {
		return 0 // doubling or adding zero stays zero
	}
	doublings := int(rc.GetMaxDoublings())
	var d time.Duration
	if n-1 <= doublings {
		d = minB
		for i := 1; i < n && d < maxB; i++ {
			d *= 2
		}
	} else {
		step := minB
		for i := 0; i < doublings && step < maxB; i++ {
			step *= 2
		}
		if step >= maxB {
			return maxB
		}
		linear := n - 1 - doublings
		if time.Duration(linear) > (maxB-step)/step {
			return maxB
		}
		d = step + time.Duration(linear)*step
	}
	return min(d, maxB)
}

// exhausted reports whether a task whose attempts have all failed so far may
// not be retried. Retrying stops only when both max_attempts and
// max_retry_duration are satisfied (queue.pb.go RetryConfig.max_attempts,
// docs/google-cloud.md §3). A limit that is unlimited (-1 attempts, 0 duration) places
// no requirement, so the other one decides alone; with both unlimited the
// task is retried until the retention limit.
func exhausted(rc *cloudtaskspb.RetryConfig, attempts int32, sinceFirst time.Duration) bool {
	attemptsLimited := rc.GetMaxAttempts() != -1
	durationLimited := rc.GetMaxRetryDuration().AsDuration() > 0
	if !attemptsLimited && !durationLimited {
		return false
	}
	if attemptsLimited && attempts < rc.GetMaxAttempts() {
		return false
	}
	if durationLimited && sinceFirst < rc.GetMaxRetryDuration().AsDuration() {
		return false
	}
	return true
}

// retryAfter parses a Retry-After header (delay-seconds or HTTP-date), which
// Cloud Tasks honours on 429 and 503 responses (target.pb.go HttpRequest,
// docs/google-cloud.md §3).
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if secs, err := strconv.Atoi(h); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
