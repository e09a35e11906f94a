package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValue(t *testing.T) {
	values := []int64{0, 1, 255, 256, 257, 511, 512, 1000, 123456789, math.MaxInt64 - 1, math.MaxInt64}
	for shift := range 63 {
		values = append(values, int64(1)<<shift, int64(1)<<shift-1, int64(1)<<shift+1)
	}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside [0, %d)", v, i, numBuckets)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Errorf("bucketOf(%d) = %d with range [%d, %d], which misses it", v, i, lo, hi)
		}
		if width := float64(hi - lo + 1); v >= subCount && width/float64(lo) > 1.0/subHalf+1e-12 {
			t.Errorf("bucket %d [%d, %d] is wider than 1/%d of its values", i, lo, hi, subHalf)
		}
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	_, prevHi := bucketRange(0)
	for i := 1; i < numBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, prevHi+1)
		}
		if hi < lo {
			t.Fatalf("bucket %d range [%d, %d] is empty", i, lo, hi)
		}
		prevHi = hi
	}
	if prevHi != math.MaxInt64 {
		t.Errorf("last bucket ends at %d, want MaxInt64", prevHi)
	}
}

func TestQuantileSmallValuesExact(t *testing.T) {
	h := NewHistogram()
	for v := 1; v <= 100; v++ { // 1..100 ns, all below subCount: exact
		h.Record(time.Duration(v))
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.01, 1}, {0.5, 50}, {0.95, 95}, {0.99, 99}, {0.991, 100}, {1, 100},
	}
	for _, tt := range tests {
		if got := h.Quantile(tt.q); got != tt.want {
			t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
}

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func TestQuantileWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() int64{
		"uniform 0-50ms": func() int64 { return rng.Int64N(int64(50 * time.Millisecond)) },
		"exponential":    func() int64 { return int64(rng.ExpFloat64() * float64(3*time.Millisecond)) },
		"bimodal": func() int64 {
			if rng.IntN(10) == 0 {
				return int64(200*time.Millisecond) + rng.Int64N(int64(time.Second))
			}
			return int64(time.Millisecond) + rng.Int64N(int64(time.Millisecond))
		},
	}
	for name, draw := range dists {
		t.Run(name, func(t *testing.T) {
			h := NewHistogram()
			values := make([]int64, 20000)
			for i := range values {
				values[i] = draw()
				h.Record(time.Duration(values[i]))
			}
			slices.Sort(values)
			for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				want := exactQuantile(values, q)
				got := int64(h.Quantile(q))
				if diff := math.Abs(float64(got - want)); diff > float64(want)/subHalf+1 {
					t.Errorf("Quantile(%v) = %d, exact %d: off by %.3f%%", q, got, want, 100*diff/float64(want))
				}
			}
			if got, want := int64(h.Quantile(1)), values[len(values)-1]; got != want {
				t.Errorf("Quantile(1) = %d, want the maximum %d", got, want)
			}
		})
	}
}

func TestMergeEqualsRecordingAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 5000 {
		d := time.Duration(rng.Int64N(int64(time.Second)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	m := NewHistogram()
	m.Merge(a)
	m.Merge(b)
	m.Merge(NewHistogram()) // merging nothing changes nothing
	if m.Count() != all.Count() {
		t.Fatalf("merged count %d, want %d", m.Count(), all.Count())
	}
	if got, want := m.Summary(), all.Summary(); math.Abs(got.Mean-want.Mean) > 1e-9 ||
		got.P50 != want.P50 || got.P95 != want.P95 || got.P99 != want.P99 || got.Max != want.Max {
		t.Errorf("merged summary %+v, want %+v", got, want)
	}
}

func TestSummary(t *testing.T) {
	if got := NewHistogram().Summary(); got != (Latency{}) {
		t.Errorf("empty Summary() = %+v, want zero", got)
	}
	h := NewHistogram()
	h.Record(-time.Millisecond) // a clock step backwards counts as 0
	h.Record(2 * time.Millisecond)
	h.Record(4 * time.Millisecond)
	h.Record(6 * time.Millisecond)
	s := h.Summary()
	if s.Count != 4 || s.Mean != 3 {
		t.Errorf("Summary() count %d mean %v, want 4 and 3ms", s.Count, s.Mean)
	}
	if s.Max != 6 {
		t.Errorf("Summary().Max = %v, want 6ms exactly (the recorded maximum)", s.Max)
	}
	if math.Abs(s.P50-2) > 2.0/subHalf {
		t.Errorf("Summary().P50 = %v, want 2ms within precision", s.P50)
	}
	if s.P99 != 6 || s.P95 != 6 {
		t.Errorf("Summary() p95 %v p99 %v, want 6ms (clamped to the maximum)", s.P95, s.P99)
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		n    int64
		d    time.Duration
		want float64
	}{
		{1000, time.Second, 1000},
		{1000, 2 * time.Second, 500},
		{3, 1500 * time.Millisecond, 2},
		{10, 0, 0},
		{0, time.Second, 0},
	}
	for _, tt := range tests {
		if got := rate(tt.n, tt.d); got != tt.want {
			t.Errorf("rate(%d, %v) = %v, want %v", tt.n, tt.d, got, tt.want)
		}
	}
}
