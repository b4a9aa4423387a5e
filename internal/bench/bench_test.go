package bench

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

// TestCPUTimes: the readings of /proc grow with the CPU this process burns.
// It burns until its own reading has grown (on a loaded machine 300 ms of
// wall time may be far less of CPU), then checks the machine's reading grew
// at least as much.
func TestCPUTimes(t *testing.T) {
	self, machine := ProcessCPU(os.Getpid()), MachineCPU()
	n := 0
	for start := time.Now(); ProcessCPU(os.Getpid())-self < 300*time.Millisecond; n++ {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("busy for 30s (%d turns), process time grew %v", n, ProcessCPU(os.Getpid())-self)
		}
	}
	if d := MachineCPU() - machine; d < 250*time.Millisecond {
		t.Fatalf("burned 300ms of CPU, machine busy time grew %v", d)
	}
}

// TestTreeCPU: a process's tree reading is at least its own.
func TestTreeCPU(t *testing.T) {
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
	}
	if own, tree := ProcessCPU(os.Getpid()), TreeCPU(os.Getpid()); tree < own || own == 0 {
		t.Fatalf("process CPU %v, tree CPU %v", own, tree)
	}
	if TreeCPU(-1) != 0 {
		t.Fatal("no process, some CPU")
	}
}

// TestPercentile: nearest rank, whatever the order of the samples.
func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, c := range []struct{ p, want float64 }{{50, 5}, {99, 10}, {100, 10}, {10, 1}, {11, 2}, {0.1, 1}} {
		if got := Percentile(xs, c.p); got != c.want {
			t.Errorf("p%v of 1…10: %v, want %v", c.p, got, c.want)
		}
	}
	if got := Percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing: %v", got)
	}
	if got := Percentile([]float64{7}, 99); got != 7 {
		t.Errorf("p99 of one: %v", got)
	}
}

// TestStreamBody: every event of a streamed body is one the server
// accepts, in the month asked for, and two bodies share no id.
func TestStreamBody(t *testing.T) {
	m := usage.Month{Year: 2026, Month: time.October}
	ids := map[string]bool{}
	for seq := range int64(2) {
		var body struct{ Events []json.RawMessage }
		if err := json.Unmarshal(StreamBody("s", seq, 200, 50, m), &body); err != nil {
			t.Fatal(err)
		}
		if len(body.Events) != 200 {
			t.Fatalf("%d events, want 200", len(body.Events))
		}
		for i, raw := range body.Events {
			ev, errs, err := usage.DecodeEvent(raw, i, m.End().Add(time.Hour), nil)
			if err != nil || len(errs) > 0 {
				t.Fatalf("event %d %s: %v %v", i, raw, err, errs)
			}
			if usage.MonthOf(ev.OccurredAt) != m {
				t.Fatalf("event %d in %v, want %v", i, ev.OccurredAt, m)
			}
			if ids[ev.ID] {
				t.Fatalf("id %s twice", ev.ID)
			}
			ids[ev.ID] = true
		}
	}
}
