// Package bench measures tally on this machine: a server process on
// loopback, a load generator in this process, and PostgreSQL itself as the
// yardstick, every ratio taken side by side in the same run.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Env is a running server process and its database.
type Env struct {
	BaseURL    string
	Pool       *pgxpool.Pool
	AccountSID string
	KeySID     string
	Secret     string
	Server     *exec.Cmd
	// Accounts the ingest benches spread their bodies over, round robin
	// (empty: the one above). On Citus each account lives on one worker.
	Accounts []Account
	// Nodes are the database's servers, for CPU and size per node (empty
	// when the database is not the bench's own).
	Nodes []Node
	// Citus: the database is a Citus coordinator; the raw COPY yardstick
	// then goes to a table distributed like events.
	Citus bool
}

// Account is an account the bench writes to, with an admin key of its own.
type Account struct{ SID, KeySID, Secret string }

// accounts are the accounts bodies go to, in turn.
func (e *Env) accounts() []Account {
	if len(e.Accounts) > 0 {
		return e.Accounts
	}
	return []Account{{e.AccountSID, e.KeySID, e.Secret}}
}

// StartServer runs `tally serve` (bin) on a free loopback port with env.
// Its log goes to logTo (nil: nowhere).
func StartServer(ctx context.Context, bin string, env []string, logTo io.Writer) (*exec.Cmd, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(env, "TALLY_ADDR="+addr)
	cmd.Stderr = io.Discard
	if logTo != nil {
		cmd.Stderr = logTo
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start server: %w", err)
	}
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, base, nil
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, "", fmt.Errorf("server on %s not ready in 30s", addr)
		}
	}
}

// PeakRSS is the peak resident set of a process (VmHWM), in MiB.
func PeakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// clockTick is the unit of CPU times in /proc (USER_HZ), 100 on Linux.
const clockTick = 10 * time.Millisecond

// ProcessCPU is the CPU time a process has used, user and system (0 where
// /proc cannot tell).
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after it. utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// MachineCPU is the CPU time all processors have spent busy (not idle nor
// waiting for I/O, nor stolen by the hypervisor) since boot (0 where /proc
// cannot tell).
func MachineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	// user nice system idle iowait irq softirq steal
	for i, v := range f[1:9] {
		if i == 3 || i == 4 || i == 7 {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * clockTick
}

// Stats summarizes repeated measurements.
type Stats struct{ Median, Min, Max float64 }

// Summarize returns the median, min and max of xs.
func Summarize(xs []float64) Stats {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return Stats{}
	}
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stats{Median: m, Min: s[0], Max: s[len(s)-1]}
}

func (s Stats) String() string {
	return fmt.Sprintf("%s (min %s, max %s)", human(s.Median), human(s.Min), human(s.Max))
}

func human(x float64) string {
	switch {
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 1:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strconv.FormatFloat(x, 'f', 4, 64)
}
