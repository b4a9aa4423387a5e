// Package pgcluster runs a private PostgreSQL cluster from the server
// binaries installed on the machine, for `tally dev` and for tests. The
// server listens only on a unix socket inside the data directory, and its
// lifetime is tied to the process that started it.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries says, in one line, that no PostgreSQL server is installed and
// what to do about it.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries (initdb, postgres) found on PATH or under /usr/lib/postgresql/*/bin: install them with `apt-get install postgresql`, or set DATABASE_URL to use an existing database")

// searchDirs is where Debian and Ubuntu put the server binaries.
const searchGlob = "/usr/lib/postgresql/*/bin"

// FindBinaries returns the directory holding initdb and postgres: PATH
// first, then the newest /usr/lib/postgresql/N/bin.
func FindBinaries() (string, error) {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	matches, _ := filepath.Glob(searchGlob)
	// Newest major version first.
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	return findIn(append(dirs, matches...))
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func findIn(dirs []string) (string, error) {
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func isExec(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Options tune a cluster.
type Options struct {
	// BinDir holds the server binaries; "" finds them.
	BinDir string
	// Fast trades durability for speed (fsync off): for throwaway test
	// clusters only.
	Fast bool
	// Logger receives a line when the cluster is created or started.
	Logger *slog.Logger
	// Settings are extra server settings (-c name=value), e.g. a larger
	// shared_buffers for benchmarks; they override the defaults.
	Settings map[string]string
}

// Cluster is a running private PostgreSQL server.
type Cluster struct {
	dir    string // the data directory (PGDATA)
	socket string // the directory of the unix socket
	cmd    *exec.Cmd
	exited chan struct{}
	log    *slog.Logger
	home   string // HOME of the server process; "" keeps ours
}

// Start creates the cluster in dir the first time (initdb), then starts the
// server and waits until it accepts connections. A postmaster.pid left by a
// crashed run does not block the start.
func Start(ctx context.Context, dir string, opts Options) (*Cluster, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin := opts.BinDir
	if bin == "" {
		var err error
		if bin, err = FindBinaries(); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	c := &Cluster{dir: dir, socket: dir, exited: make(chan struct{}), log: log}
	// A socket path longer than sun_path (108 bytes) cannot be bound.
	if n := len(filepath.Join(c.socket, ".s.PGSQL.5432")); n > 107 {
		return nil, fmt.Errorf("cluster dir %s is too deep for a unix socket path (%d bytes, at most 107): use a shorter --data-dir", dir, n)
	}
	cred, home, err := serverCredential()
	if err != nil {
		return nil, err
	}
	c.home = home
	if err := initDir(ctx, dir, bin, cred, opts.Fast, log); err != nil {
		return nil, err
	}
	if err := removeStalePID(dir); err != nil {
		return nil, err
	}
	// After a crash, backends of the dead server may still hold its shared
	// memory for a moment: retry while PostgreSQL says so.
	for attempt := 0; ; attempt++ {
		err = c.start(ctx, bin, cred, opts)
		if err == nil {
			break
		}
		if attempt == 50 || !strings.Contains(err.Error(), "pre-existing shared memory block") {
			return nil, err
		}
		c.exited = make(chan struct{})
		time.Sleep(200 * time.Millisecond)
		if err := removeStalePID(dir); err != nil {
			return nil, err
		}
	}
	log.Info("private PostgreSQL started", "dir", dir)
	return c, nil
}

// initDir makes dir, owned by the server's user, and creates a cluster in
// it (initdb) unless there is one.
func initDir(ctx context.Context, dir, bin string, cred *syscall.Credential, fast bool, log *slog.Logger) error {
	if err := prepareDir(dir, cred, log); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	log.Info("creating private PostgreSQL cluster", "dir", dir)
	args := []string{"-D", dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if fast {
		args = append(args, "--no-sync")
	}
	if out, err := run(ctx, cred, filepath.Join(bin, "initdb"), args...); err != nil {
		return fmt.Errorf("initdb %s: %w: %s", dir, err, lastLines(out, 10))
	}
	return nil
}

// serverCredential is who the server runs as: postgres refuses to run as
// root, so a root process runs it as the postgres system user, with that
// user's home: libpq inside the server (Citus's connections to its
// workers) reads client certificates and .pgpass from $HOME, and root's
// are unreadable to it.
func serverCredential() (*syscall.Credential, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, "", fmt.Errorf("running as root, and there is no postgres system user to run the cluster as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, u.HomeDir, nil
}

// serverEnv is our environment with HOME replaced by home ("" keeps it).
func serverEnv(home string) []string {
	if home == "" {
		return nil // inherit
	}
	env := []string{"HOME=" + home}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return env
}

// prepareDir makes dir, owned by the server's user with mode 0700, and lets
// that user traverse every ancestor: t.TempDir() and checkouts under /root
// are 0700 and root's. Only search permission (o+x) is ever added.
func prepareDir(dir string, cred *syscall.Credential, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create cluster dir: %w", err)
	}
	if cred == nil {
		return nil
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("chown cluster dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod cluster dir: %w", err)
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("let the postgres user traverse %s: %w", p, err)
			}
			log.Info("added search permission (o+x) so the postgres user can reach the cluster", "dir", p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// removeStalePID removes a postmaster.pid whose process is gone or is not
// a postgres server of this directory, as after a crash or a SIGKILL.
func removeStalePID(dir string) error {
	pidFile := filepath.Join(dir, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", pidFile, err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err == nil && pid > 0 {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && bytes.Contains(cmdline, []byte("postgres")) && bytes.Contains(cmdline, []byte(dir)) {
			return fmt.Errorf("a PostgreSQL server (pid %d) is already running on %s: is another tally dev running?", pid, dir)
		}
	}
	for _, f := range []string{pidFile, filepath.Join(dir, ".s.PGSQL.5432.lock"), filepath.Join(dir, ".s.PGSQL.5432")} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", f, err)
		}
	}
	return nil
}

func (c *Cluster) start(ctx context.Context, bin string, cred *syscall.Credential, opts Options) error {
	settings := map[string]string{"listen_addresses": "", "max_connections": "200", "shared_buffers": "128MB",
		"unix_socket_permissions": "0700"}
	if opts.Fast {
		settings["fsync"], settings["synchronous_commit"], settings["full_page_writes"] = "off", "off", "off"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	args := []string{"-D", c.dir, "-k", c.socket}
	for _, k := range sortedKeys(settings) {
		args = append(args, "-c", k+"="+settings[k])
	}
	logFile, err := os.OpenFile(filepath.Join(c.dir, "..", filepath.Base(c.dir)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.Dir = "/" // the server user may not be able to read our cwd
	c.cmd.Env = serverEnv(c.home)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		// Its own process group: Ctrl-C in a terminal reaches tally, which
		// then stops the server in order, instead of reaching both at once.
		Setpgid: true,
		// If tally dies without stopping it, the server shuts down too.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := c.cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	go func() {
		c.cmd.Wait()
		logFile.Close()
		close(c.exited)
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-c.exited:
			tail, _ := os.ReadFile(logFile.Name())
			return fmt.Errorf("postgres exited at start: %s", lastLines(tail, 10))
		case <-ctx.Done():
			c.Stop(context.WithoutCancel(ctx))
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop(context.WithoutCancel(ctx))
			return fmt.Errorf("postgres did not accept connections within 60s: %w", err)
		}
	}
}

// Stop shuts the server down (fast shutdown: sessions are disconnected,
// work is checkpointed) and waits for it. It is safe to call twice.
func (c *Cluster) Stop(ctx context.Context) error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
		return nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	_ = c.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	return errors.New("postgres did not stop in time and was killed")
}

// Dir returns the cluster's data directory.
func (c *Cluster) Dir() string { return c.dir }

// Exited is closed when the server process has ended.
func (c *Cluster) Exited() <-chan struct{} { return c.exited }

// ConnString returns a URL for database db over the cluster's unix socket,
// usable by pgx and psql.
func (c *Cluster) ConnString(db string) string {
	return "postgres://postgres@/" + url.PathEscape(db) + "?host=" + url.QueryEscape(c.socket) + "&sslmode=disable"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func run(ctx context.Context, cred *syscall.Credential, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = "/" // the server user may not be able to read the cwd
	return cmd.CombinedOutput()
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
