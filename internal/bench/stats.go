package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-linear buckets, as HdrHistogram does:
// values below 2^subBits nanoseconds are exact, larger ones fall into one of
// 2^(subBits-1) buckets per power of two, so a reported value is within
// 1/2^(subBits-1) (under 0.8%) of a recorded one. Its size is fixed, whatever
// the number of values. The zero value is not usable; call NewHistogram. A
// Histogram is owned by one goroutine; merge them afterwards with Merge.
type Histogram struct {
	counts []uint64
	total  uint64
	sum    float64
	min    int64
	max    int64
}

const (
	subBits  = 8
	subCount = 1 << subBits       // values below this are exact
	subHalf  = 1 << (subBits - 1) // buckets per power of two above it
	// numBuckets covers every non-negative int64.
	numBuckets = subCount + (63-subBits)*subHalf
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits // >= 1
	mantissa := int(v >> shift)              // in [subHalf, subCount)
	return subCount + (shift-1)*subHalf + (mantissa - subHalf)
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	shift := (i-subCount)/subHalf + 1
	mantissa := int64((i-subCount)%subHalf + subHalf)
	lo = mantissa << shift
	return lo, lo + (int64(1) << shift) - 1
}

// Record adds one duration; negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	h.total++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Quantile returns the nearest-rank q-quantile (0 < q <= 1): the smallest
// recorded value that at least q of all values do not exceed, to within the
// bucket precision. It returns 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	if rank == h.total {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		lo, hi := bucketRange(i)
		// Report the middle of the bucket, but never outside what was
		// actually recorded.
		mid := lo + (hi-lo)/2
		return time.Duration(min(max(mid, h.min), h.max))
	}
	return time.Duration(h.max) // not reached: the counts sum to total
}

// Latency is a summary of a Histogram, in milliseconds for JSON.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary returns the mean, median, 95th and 99th percentiles and maximum.
func (h *Histogram) Summary() Latency {
	if h.total == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.total,
		Mean:  h.sum / float64(h.total) / 1e6,
		P50:   ms(h.Quantile(0.50)),
		P95:   ms(h.Quantile(0.95)),
		P99:   ms(h.Quantile(0.99)),
		Max:   ms(time.Duration(h.max)),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rate is n per second over d, or 0 for an empty interval.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
