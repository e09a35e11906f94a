package pebblestore

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/store"
)

// BenchmarkApplySync measures synced Apply of one 1 KiB record per batch,
// on the operating system's file system (one fsync per op).
func BenchmarkApplySync(b *testing.B) {
	for _, perBatch := range []int{1, 64} {
		b.Run(map[int]string{1: "1rec", 64: "64rec"}[perBatch], func(b *testing.B) {
			s, err := Open(b.TempDir(), DefaultOptions())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rec := make([]byte, 1024)
			var batch store.Batch
			seq := uint64(0)
			b.SetBytes(int64(len(rec) * perBatch))
			b.ResetTimer()
			for b.Loop() {
				batch.Reset()
				for range perBatch {
					seq++
					batch.PutMessage(1, seq, rec)
				}
				if err := s.Apply(&batch, true); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkFillDrain fills a queue with a 200k backlog of 1 KiB records
// (synced batches of 100) and drains it with in-order acks (unsynced
// batches of 100 deletes plus SetFloor), reading the head from the floor as
// a consumer would; then it times a head lookup and a reopen.
func BenchmarkFillDrain(b *testing.B) {
	const backlog, per = 200_000, 100
	rec := make([]byte, 1024)
	for b.Loop() {
		dir := b.TempDir()
		s, err := Open(dir, DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		var batch store.Batch
		start := time.Now()
		for seq := uint64(1); seq <= backlog; seq += per {
			batch.Reset()
			for i := seq; i < seq+per; i++ {
				batch.PutMessage(1, i, rec)
			}
			if err := s.Apply(&batch, true); err != nil {
				b.Fatal(err)
			}
		}
		fill := time.Since(start)
		start = time.Now()
		for floor := uint64(1); floor <= backlog; floor += per {
			n := 0
			if err := s.Scan(1, floor, func(uint64, []byte) bool { n++; return n < per }); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
			for i := floor; i < floor+per; i++ {
				batch.DeleteMessage(1, i)
			}
			batch.SetFloor(1, floor+per)
			if err := s.Apply(&batch, false); err != nil {
				b.Fatal(err)
			}
		}
		drain := time.Since(start)
		start = time.Now()
		if err := s.Scan(1, 0, func(uint64, []byte) bool { return false }); err != nil {
			b.Fatal(err)
		}
		head := time.Since(start)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		s, err = Open(dir, DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		reopen := time.Since(start)
		s.Close()
		b.ReportMetric(backlog/fill.Seconds(), "fill-rec/s")
		b.ReportMetric(backlog/drain.Seconds(), "drain-rec/s")
		b.ReportMetric(float64(head.Microseconds()), "head-scan-from-0-µs")
		b.ReportMetric(float64(reopen.Milliseconds()), "reopen-ms")
	}
}
