package httpapi

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// refusalFixture is a store holding one key, and a SID the store does not hold.
func refusalFixture(tb testing.TB) (store *postgres.Store, box *secrets.Box, known, missing string) {
	tb.Helper()
	pool, _ := pgtest.NewDB(tb)
	store = postgres.New(pool, nil)
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	acct, err := store.CreateAccount(ctx, "Timing", false)
	if err != nil {
		tb.Fatal(err)
	}
	k, _, err := keys.Create(ctx, store, box, acct.SID, usage.RoleIngest, "timing")
	if err != nil {
		tb.Fatal(err)
	}
	return store, box, k.SID, usage.NewKeySID()
}

// refusalMedians times n refusals of a wrong secret for the known key and n
// of the missing SID, interleaved (each goes first half of the time), and
// returns both medians. cold drops the known key from the cache and takes a
// fresh missing SID before each pair: the first lookup of each.
func refusalMedians(tb testing.TB, c *keyCache, known, missing string, n int, cold bool) (wrong, unknown time.Duration) {
	tb.Helper()
	ctx := context.Background()
	const secret = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
	ws, us := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	refuse := func(sid string) time.Duration {
		start := time.Now()
		_, err := c.Authenticate(ctx, sid, secret)
		d := time.Since(start)
		if err == nil || !isUnauthorized(err) {
			tb.Fatalf("key %s: %v, want unauthorized", sid, err)
		}
		return d
	}
	for i := range n {
		if cold {
			c.forget(known)
			missing = usage.NewKeySID()
		}
		if i%2 == 0 {
			ws = append(ws, refuse(known))
			us = append(us, refuse(missing))
		} else {
			us = append(us, refuse(missing))
			ws = append(ws, refuse(known))
		}
	}
	slices.Sort(ws)
	slices.Sort(us)
	return ws[n/2], us[n/2]
}

func isUnauthorized(err error) bool { return errors.Is(err, usage.ErrUnauthorized) }

// TestRefusalsTakeAlike: refusing an unknown key SID and refusing a wrong
// secret for an existing key take about the same time, so the time of a
// refusal does not tell whether a key exists; and an unknown SID, once
// refused, costs no query until the key TTL has passed.
func TestRefusalsTakeAlike(t *testing.T) {
	store, box, known, missing := refusalFixture(t)
	c := newKeyCache(store, box, time.Minute)
	refusalMedians(t, c, known, missing, 20, false) // warm

	before := store.Pool().Stat().AcquireCount()
	wrong, unknown := refusalMedians(t, c, known, missing, 400, false)
	if q := store.Pool().Stat().AcquireCount() - before; q > 0 {
		t.Errorf("400 refusals of a cached unknown SID cost %d queries, want 0", q)
	}
	t.Logf("medians: wrong secret %v, unknown key %v", wrong, unknown)
	// Far apart only if one refusal does work the other does not (a query,
	// a decryption): a database round trip is a hundred times a hash.
	if ratio := float64(unknown) / float64(wrong); ratio > 3 || ratio < 1.0/3 {
		t.Errorf("median refusal of an unknown key %v, of a wrong secret %v: %.1f×", unknown, wrong, ratio)
	}
}

// BenchmarkRefusals prints, side by side, the median time to refuse a wrong
// secret for an existing key and to refuse an unknown key SID: from the
// cache (warm) and at the first lookup of each (cold).
func BenchmarkRefusals(b *testing.B) {
	store, box, known, missing := refusalFixture(b)
	for _, cold := range []bool{false, true} {
		b.Run(map[bool]string{false: "warm", true: "cold"}[cold], func(b *testing.B) {
			c := newKeyCache(store, box, time.Minute)
			refusalMedians(b, c, known, missing, 2, cold)
			b.ResetTimer()
			wrong, unknown := refusalMedians(b, c, known, missing, max(b.N, 2), cold)
			b.ReportMetric(float64(wrong.Nanoseconds()), "wrong-secret-median-ns")
			b.ReportMetric(float64(unknown.Nanoseconds()), "unknown-key-median-ns")
			b.ReportMetric(0, "ns/op")
		})
	}
}
