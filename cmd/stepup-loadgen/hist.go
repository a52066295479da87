package main

import (
	"math"
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram (HDR style): values in
// nanoseconds, 64 sub-buckets per power of two, so every recorded value is
// reported within 1/64 (1.6%) of its true value, in constant memory however
// long the run. Not safe for concurrent use: each worker keeps its own and
// they are merged at the end.
type hist struct {
	counts [64 * subBuckets]uint64
	n      uint64
	max    int64
	min    int64
	sum    float64
}

const (
	subBits    = 6
	subBuckets = 1 << subBits
)

func newHist() *hist { return &hist{min: math.MaxInt64} }

// index maps v >= 0 to its bucket: values below subBuckets are exact; above,
// the bucket keeps the top subBits+1 significant bits.
func index(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	exp := 63 - bits.LeadingZeros64(uint64(v)) // position of the top bit, >= subBits
	shift := exp - subBits
	sub := int(v>>shift) - subBuckets // 0..subBuckets-1
	return (shift+1)*subBuckets + sub
}

// value is the upper bound of bucket i (what percentiles report).
func value(i int) int64 {
	if i < subBuckets {
		return int64(i)
	}
	shift := i/subBuckets - 1
	sub := int64(i%subBuckets) + subBuckets
	return (sub+1)<<shift - 1
}

func (h *hist) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[index(v)]++
	h.n++
	h.sum += float64(v)
	h.max = max(h.max, v)
	h.min = min(h.min, v)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
	h.min = min(h.min, o.min)
}

// quantile returns the value at q (0..1), never above the true maximum.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(value(i), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// summary is what reports show of a histogram.
type summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func (h *hist) summary() summary {
	if h.n == 0 {
		return summary{}
	}
	return summary{
		Count: h.n, Mean: ms(h.mean()), P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)),
		P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(time.Duration(h.max)),
	}
}
