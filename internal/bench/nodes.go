package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Node is one PostgreSQL server of the bench's database: the only one on
// plain PostgreSQL, the coordinator and each worker on Citus.
type Node struct {
	Name    string // "postgres", "coordinator", "worker1"…
	URL     string // the bench's database on this node
	DataDir string // its data directory, to find the postmaster; "" if unknown
}

// CPU is the CPU time the node's server has used so far: the postmaster
// and every live process under it (backends, background workers), plus
// what its ended children used (the postmaster's cutime and cstime, where
// a backend's time goes when it exits). The difference of two readings is
// what the node spent between them. 0 when the node's process is unknown.
func (n Node) CPU() time.Duration {
	if n.DataDir == "" {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0
	}
	return TreeCPU(pid)
}

// TreeCPU is the CPU time of process pid and of all its descendants alive
// now, each with the time of its own ended children: user and system.
func TreeCPU(pid int) time.Duration {
	children := map[int][]int{}
	own := map[int]time.Duration{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, cpu, ok := procStat(p)
		if !ok {
			continue
		}
		children[ppid] = append(children[ppid], p)
		own[p] = cpu
	}
	if _, ok := own[pid]; !ok {
		return 0
	}
	var total time.Duration
	stack := []int{pid}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		total += own[p]
		stack = append(stack, children[p]...)
	}
	return total
}

// procStat reads a process's parent and its CPU time with that of its
// waited-for children (utime, stime, cutime, cstime).
func procStat(pid int) (ppid int, cpu time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// Fields after the command name: state(3) ppid(4) … utime(14) stime(15)
	// cutime(16) cstime(17), so index 1 is ppid and 11–14 the times.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 15 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	var ticks int64
	for _, s := range f[11:15] {
		n, _ := strconv.ParseInt(s, 10, 64)
		ticks += n
	}
	return ppid, time.Duration(ticks) * clockTick, true
}

// LoadAvg is the machine's load average over 1, 5 and 15 minutes, as
// uptime prints it ("" where /proc cannot tell).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// NodeSizes is the size of the bench's database on each node, in bytes, in
// the order of e.Nodes; with no nodes known, the database the pool is
// connected to.
func (e *Env) NodeSizes(ctx context.Context) ([]int64, error) {
	if len(e.Nodes) == 0 {
		n, err := e.DatabaseSize(ctx)
		return []int64{n}, err
	}
	sizes := make([]int64, len(e.Nodes))
	for i, n := range e.Nodes {
		conn, err := pgx.Connect(ctx, n.URL)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		err = conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&sizes[i])
		conn.Close(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return sizes, nil
}

// CPUReading is the CPU time used so far by each node's server (in the
// order of e.Nodes), the tally server, this process (the load generator)
// and the whole machine.
type CPUReading struct {
	Nodes                   []time.Duration
	Server, Client, Machine time.Duration
}

// ReadCPU takes a CPUReading now.
func (e *Env) ReadCPU() CPUReading {
	r := CPUReading{Server: ProcessCPU(e.Server.Process.Pid), Client: ProcessCPU(os.Getpid()), Machine: MachineCPU()}
	for _, n := range e.Nodes {
		r.Nodes = append(r.Nodes, n.CPU())
	}
	return r
}

// Sub is the CPU spent from r0 to r.
func (r CPUReading) Sub(r0 CPUReading) CPUReading {
	d := CPUReading{Server: r.Server - r0.Server, Client: r.Client - r0.Client, Machine: r.Machine - r0.Machine}
	for i := range r.Nodes {
		d.Nodes = append(d.Nodes, r.Nodes[i]-r0.Nodes[i])
	}
	return d
}
