package benchref

import (
	"testing"
	"time"
)

// Sizes runs small and large alternately b.N times each — the same
// operation on a store of 10 and of 1,000 entries — and reports their
// microseconds per operation as "us/op-10" and "us/op-1000", and "ratio",
// the second over the first: near 1 means the cost of a change does not
// grow with the store.
func Sizes(b *testing.B, small, large func()) {
	b.Helper()
	var d10, d1000 time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		small()
		mid := time.Now()
		large()
		d10 += mid.Sub(start)
		d1000 += time.Since(mid)
	}
	b.StopTimer()
	us10 := float64(d10.Microseconds()) / float64(b.N)
	us1000 := float64(d1000.Microseconds()) / float64(b.N)
	b.ReportMetric(us10, "us/op-10")
	b.ReportMetric(us1000, "us/op-1000")
	if us10 > 0 {
		b.ReportMetric(us1000/us10, "ratio")
	}
	b.ReportMetric(0, "ns/op") // the two sizes are reported apart
}
