package bench

import (
	"os"
	"testing"
	"time"
)

// TestCPUTimes: the readings of /proc grow with the CPU this process burns.
func TestCPUTimes(t *testing.T) {
	self, machine := ProcessCPU(os.Getpid()), MachineCPU()
	n := 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		n++ // busy, not asleep
	}
	if d := ProcessCPU(os.Getpid()) - self; d < 100*time.Millisecond {
		t.Fatalf("burned 300ms of CPU (%d turns), process time grew %v", n, d)
	}
	if d := MachineCPU() - machine; d < 100*time.Millisecond {
		t.Fatalf("burned 300ms of CPU, machine busy time grew %v", d)
	}
}
