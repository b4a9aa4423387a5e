package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// BenchmarkRecordBody is the cost of one body from one client, by its size:
// a token verification's group is 1 to 32 events, a JSON batch up to 1000.
// The test cluster runs without fsync (TALLY_TEST_DATABASE_URL can point at
// a durable one), so this is the CPU and round trips of the merge.
func BenchmarkRecordBody(b *testing.B) {
	for _, size := range []int{1, 32, 1000} {
		b.Run(fmt.Sprintf("events=%d", size), func(b *testing.B) {
			pool, _ := pgtest.NewDB(b)
			s := postgres.New(pool, func() time.Time { return clock })
			a, err := s.CreateAccount(b.Context(), "Acme", false)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				events := make([]usage.Event, size)
				for j := range events {
					events[j] = ev(fmt.Sprintf("e%d-%d", i, j), fmt.Sprintf("user-%d", (i*size+j)%5000), "2026-10-05T12:00:00Z")
				}
				if _, err := s.RecordEvents(b.Context(), a.SID, &usage.EventList{Events: events}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
