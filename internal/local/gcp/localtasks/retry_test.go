package localtasks

import (
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	rc := func(minB, maxB time.Duration, doublings int32) *cloudtaskspb.RetryConfig {
		return &cloudtaskspb.RetryConfig{MinBackoff: durationpb.New(minB), MaxBackoff: durationpb.New(maxB), MaxDoublings: doublings}
	}
	cases := []struct {
		name string
		rc   *cloudtaskspb.RetryConfig
		want []time.Duration // delays before retries 1, 2, 3, …
	}{
		{
			// queue.pb.go RetryConfig.max_doublings (docs/google-cloud.md §3): "if min_backoff
			// is 10s, max_backoff is 300s, and max_doublings is 3 … the requests
			// will retry at 10s, 20s, 40s, 80s, 160s, 240s, 300s, 300s, ...".
			name: "documented_example",
			rc:   rc(10*time.Second, 300*time.Second, 3),
			want: []time.Duration{10, 20, 40, 80, 160, 240, 300, 300, 300},
		},
		{
			name: "no_doublings_is_linear",
			rc:   rc(10*time.Second, 45*time.Second, 0),
			want: []time.Duration{10, 20, 30, 40, 45, 45},
		},
		{
			name: "doublings_capped_before_linear_phase",
			rc:   rc(10*time.Second, 50*time.Second, 16),
			want: []time.Duration{10, 20, 40, 50, 50},
		},
		{
			name: "min_equals_max",
			rc:   rc(5*time.Second, 5*time.Second, 3),
			want: []time.Duration{5, 5, 5},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []time.Duration
			for n := 1; n <= len(tc.want); n++ {
				got = append(got, backoff(tc.rc, n)/time.Second)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("backoff schedule in seconds (-want, +got):\n%s", diff)
			}
		})
	}
	t.Run("huge_retry_number_stays_capped", func(t *testing.T) {
		t.Parallel()
		if got := backoff(rc(time.Second, time.Hour, 16), 1_000_000); got != time.Hour {
			t.Errorf("backoff(…, 1e6) = %s, want 1h", got)
		}
	})
}

func TestExhausted(t *testing.T) {
	t.Parallel()
	// queue.pb.go RetryConfig.max_attempts (docs/google-cloud.md §3): retrying stops only
	// when max_attempts and max_retry_duration are both satisfied; -1 attempts
	// is unlimited, a 0 duration is unlimited, and both unlimited retries until
	// the retention limit.
	rc := func(attempts int32, d time.Duration) *cloudtaskspb.RetryConfig {
		return &cloudtaskspb.RetryConfig{MaxAttempts: attempts, MaxRetryDuration: durationpb.New(d)}
	}
	cases := []struct {
		name       string
		rc         *cloudtaskspb.RetryConfig
		attempts   int32
		sinceFirst time.Duration
		want       bool
	}{
		{"attempts_left", rc(3, 0), 2, time.Hour, false},
		{"attempts_used_no_duration_limit", rc(3, 0), 3, 0, true},
		{"attempts_used_duration_not_passed", rc(3, time.Minute), 3, 30 * time.Second, false},
		{"duration_passed_attempts_left", rc(3, time.Minute), 2, 2 * time.Minute, false},
		{"both_satisfied", rc(3, time.Minute), 3, time.Minute, true},
		{"unlimited_attempts_duration_passed", rc(-1, time.Minute), 50, time.Minute, true},
		{"unlimited_attempts_duration_not_passed", rc(-1, time.Minute), 50, time.Second, false},
		{"both_unlimited", rc(-1, 0), 1000, 30 * 24 * time.Hour, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := exhausted(tc.rc, tc.attempts, tc.sinceFirst); got != tc.want {
				t.Errorf("exhausted(%v, %d, %s) = %t, want %t", tc.rc, tc.attempts, tc.sinceFirst, got, tc.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{"Tue, 01 Jan 2030 00:05:00 GMT", 5 * time.Minute},
		{"garbage", 0},
		{"-5", 0},
	}
	for _, tc := range cases {
		if got := retryAfter(tc.header, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.header, got, tc.want)
		}
	}
}

func TestMergeRetry(t *testing.T) {
	t.Parallel()
	got := mergeRetry(&cloudtaskspb.RetryConfig{MaxAttempts: 5, MinBackoff: durationpb.New(time.Second)}, DefaultRetryConfig())
	if got.GetMaxAttempts() != 5 || got.GetMinBackoff().AsDuration() != time.Second ||
		got.GetMaxBackoff().AsDuration() != time.Hour || got.GetMaxDoublings() != 16 {
		t.Errorf("mergeRetry kept %v; want set fields kept and the rest from the defaults", got)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cfg := Config{
		DedupWindow:             -time.Second,
		MaxConcurrentDispatches: -1,
		DefaultRetry:            &cloudtaskspb.RetryConfig{MaxAttempts: -2},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want every problem reported")
	}
	for _, want := range []string{"DedupWindow", "MaxConcurrentDispatches", "maxAttempts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, want it to mention %s", err, want)
		}
	}
	if err := (&Config{}).Validate(); err != nil {
		t.Errorf("zero Config: Validate() = %v, want nil", err)
	}
}
