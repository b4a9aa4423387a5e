package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/usage"
)

// maxImportLine bounds one NDJSON line, as the server does: a valid event
// is far smaller, and a longer line is rejected without being buffered.
const maxImportLine = 1 << 20

func (e *env) importCommand() *cobra.Command {
	var account, dataDir string
	cmd := &cobra.Command{
		Use:   "import [--account AC…] [--data-dir .tally] FILE…",
		Short: "Send NDJSON event files (- for standard input, .gz read gzipped) to a running tally",
		Long: `Sends NDJSON event files, one event of §4 per line, through the Go client:
batched, retried and idempotent, so an interrupted import is simply run again.

Credentials: TALLY_BASE_URL, TALLY_KEY_SID and TALLY_KEY_SECRET, or else the
credentials.json of --data-dir (its account key). Lines that fail validation
are not sent: each is reported on standard error with its file and line, and
the exit status is then 1.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := e.importTarget(dataDir, account)
			if err != nil {
				return err
			}
			return e.runImport(cmd.Context(), t, args, cmd.InOrStdin())
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "the account to import into (default: the key's account)")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".tally", "where tally dev keeps credentials.json, read when TALLY_KEY_SID is not set")
	return cmd
}

// importTarget is where an import sends its events, and with which key.
type importTarget struct {
	baseURL, keySID, secret, account string
}

// importTarget reads the credentials from the environment, or else from the
// data dir's credentials.json.
func (e *env) importTarget(dataDir, account string) (importTarget, error) {
	if account != "" && !usage.IsAccountSID(account) {
		return importTarget{}, fmt.Errorf("--account %q is not an account SID (AC followed by 32 hex digits)", account)
	}
	vars := []struct{ name, value string }{
		{"TALLY_BASE_URL", e.cfg.baseURL}, {"TALLY_KEY_SID", e.cfg.keySID}, {"TALLY_KEY_SECRET", e.cfg.keySecret}}
	var set, missing []string
	for _, v := range vars {
		if v.value != "" {
			set = append(set, v.name)
		} else {
			missing = append(missing, v.name)
		}
	}
	if len(set) > 0 {
		if len(missing) > 0 {
			return importTarget{}, fmt.Errorf("%s set but not %s: set all three, or none to use %s",
				strings.Join(set, ", "), strings.Join(missing, ", "), filepath.Join(dataDir, "credentials.json"))
		}
		// Without --account, the client asks the server whose key it is.
		return importTarget{e.cfg.baseURL, e.cfg.keySID, e.cfg.keySecret, account}, nil
	}
	path := filepath.Join(dataDir, "credentials.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return importTarget{}, fmt.Errorf("no credentials: set TALLY_BASE_URL, TALLY_KEY_SID and TALLY_KEY_SECRET, or run tally dev (%w)", err)
	}
	var c credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return importTarget{}, fmt.Errorf("read %s: %w", path, err)
	}
	if c.BaseURL == "" || c.Account.APIKeySID == "" || c.Account.APIKeySecret == "" {
		return importTarget{}, fmt.Errorf("%s lacks base_url or the account key", path)
	}
	if account == "" {
		account = c.Account.AccountSID
	}
	return importTarget{c.BaseURL, c.Account.APIKeySID, c.Account.APIKeySecret, account}, nil
}

// importer reads files line by line into a client and keeps the counts of
// §10: lines read, lines rejected here; the client counts the rest.
type importer struct {
	c      *client.Client
	stderr io.Writer
	bar    *progressbar.ProgressBar // nil when standard output is not a terminal
	start  time.Time

	mu       sync.Mutex // stderr and the bar, written from the client's goroutines too
	file     string     // the file being read, named in the server's refusals
	lines    int64      // non-blank lines read: N
	rejected int64      // lines rejected before sending
	shown    time.Time  // when the bar's description was last written
}

func (e *env) runImport(ctx context.Context, t importTarget, files []string, stdin io.Reader) error {
	im := &importer{stderr: e.stderr, start: time.Now()}
	c, err := client.New(client.Config{BaseURL: t.baseURL, KeySID: t.keySID, Secret: t.secret, AccountSID: t.account,
		OnError: im.refused})
	if err != nil {
		return err
	}
	im.c = c
	if isTerminal(e.stdout) {
		im.bar = newImportBar(e.stdout, totalBytes(files, stdin))
	}

	var readErr error
	for _, name := range files {
		if readErr = im.importFile(ctx, name, stdin); readErr != nil {
			break
		}
		// Flushed file by file, so that a refusal names the file it is from.
		if err := c.Flush(ctx); err != nil && ctx.Err() != nil {
			break
		}
	}
	closeErr := c.Close(ctx)
	if im.bar != nil {
		im.bar.Finish() // cleared: the summary is the last line
	}
	st := c.Stats()
	rejected := im.rejected + st.Failed
	fmt.Fprintf(e.stdout, "imported %d events: %d accepted, %d duplicates, %d late, %d rejected\n",
		im.lines, st.Accepted, st.Duplicates, st.Late, rejected)
	switch {
	case readErr != nil:
		return readErr
	case ctx.Err() != nil:
		return fmt.Errorf("import interrupted (%w): run the same import again, what was sent counts once", ctx.Err())
	case rejected > 0:
		return fmt.Errorf("%d of %d events rejected", rejected, im.lines)
	case closeErr != nil:
		return closeErr
	}
	return nil
}

// importFile sends one file's lines. It returns an error only for what
// stops the import: a file that cannot be read.
func (im *importer) importFile(ctx context.Context, name string, stdin io.Reader) error {
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		r = f
	}
	if im.bar != nil {
		r = &countingReader{r: r, add: func(n int) { im.bar.Add(n) }}
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("import %s: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	label := name
	if name == "-" {
		label = "stdin"
	}
	im.mu.Lock()
	im.file = label
	im.mu.Unlock()

	br := bufio.NewReaderSize(r, 64<<10)
	for lineNo := 1; ; lineNo++ {
		line, tooLong, err := readLine(br)
		if err == io.EOF && len(line) == 0 && !tooLong {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("import %s: line %d: %w", label, lineNo, err)
		}
		if tooLong || len(bytes.TrimSpace(line)) > 0 {
			if !im.line(ctx, label, lineNo, line, tooLong) {
				return nil // interrupted: runImport says so
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// line handles one non-blank line; it reports false when ctx has ended.
func (im *importer) line(ctx context.Context, file string, lineNo int, line []byte, tooLong bool) bool {
	im.mu.Lock()
	im.lines++
	im.mu.Unlock()
	im.progress()
	if tooLong {
		im.reject(file, lineNo, fmt.Sprintf("the line is longer than %d bytes", maxImportLine))
		return true
	}
	ev, errs, err := usage.DecodeEvent(line, 0, time.Now(), nil)
	switch {
	case err != nil:
		im.reject(file, lineNo, "not valid JSON")
		return true
	case len(errs) > 0:
		msgs := make([]string, len(errs))
		for i, fe := range errs {
			msgs[i] = strings.TrimPrefix(fe.Field+": "+fe.Message, ": ")
		}
		im.reject(file, lineNo, strings.Join(msgs, "; "))
		return true
	}
	err = im.c.Track(ctx, client.Event{ID: ev.ID, Activity: string(ev.Activity), Source: string(ev.Source),
		ServiceSID: ev.ServiceSID, Identity: ev.Identity, OccurredAt: ev.OccurredAt,
		Actor: ev.Actor, ChannelSID: ev.ChannelSID, EndpointID: ev.EndpointID})
	if err != nil {
		im.reject(file, lineNo, err.Error())
		return ctx.Err() == nil
	}
	return true
}

// reject counts a line that is not sent and says why, with its place.
func (im *importer) reject(file string, lineNo int, why string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.rejected++
	im.printLocked(fmt.Sprintf("%s:%d: %s", file, lineNo, why))
}

// refused is the client's OnError: events the server refused, or gave up
// on. They count as rejected through the client's Failed.
func (im *importer) refused(err error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	var ce *client.Error
	if errors.As(err, &ce) && len(ce.Errors) > 0 && ce.Errors[0].EventID != "" {
		for _, fe := range ce.Errors {
			im.printLocked(fmt.Sprintf("%s: event %q refused by the server: %s: %s", im.file, fe.EventID, fe.Field, fe.Message))
		}
		return
	}
	im.printLocked(fmt.Sprintf("%s: %v", im.file, err))
}

func (im *importer) printLocked(msg string) {
	if im.bar != nil {
		im.bar.Clear() // the message on a line of its own; the bar comes back below it
	}
	fmt.Fprintln(im.stderr, msg)
}

// progress writes the events read and their rate into the bar, a few
// times a second at most.
func (im *importer) progress() {
	if im.bar == nil {
		return
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	now := time.Now()
	if now.Sub(im.shown) < 200*time.Millisecond {
		return
	}
	im.shown = now
	rate := float64(im.lines) / max(now.Sub(im.start).Seconds(), 0.001)
	im.bar.Describe(fmt.Sprintf("%d events, %.0f events/s", im.lines, rate))
}

// readLine reads one line without its line ending. A line longer than
// maxImportLine is skipped to its end and reported as tooLong.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong && len(buf)+len(chunk) > maxImportLine {
			tooLong, buf = true, nil
		}
		if err == bufio.ErrBufferFull {
			if !tooLong {
				buf = append(buf, chunk...)
			}
			continue
		}
		if tooLong {
			return nil, true, err
		}
		if buf != nil {
			buf = append(buf, chunk...)
		} else {
			buf = chunk
		}
		return bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r")), false, err
	}
}

// newImportBar is the terminal's progress bar over the input's bytes (the
// compressed bytes of a .gz file): percent and time left, and in its
// description the events read and their rate. Unknown sizes (a pipe) get a
// spinner.
func newImportBar(w io.Writer, total int64) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("0 events"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionClearOnFinish(),
	)
}

// totalBytes is the size of the input, or -1 when a part of it (a pipe on
// standard input) has no size known in advance.
func totalBytes(files []string, stdin io.Reader) int64 {
	var total int64
	for _, name := range files {
		var fi os.FileInfo
		var err error
		if name == "-" {
			f, ok := stdin.(*os.File)
			if !ok {
				return -1
			}
			fi, err = f.Stat()
		} else {
			fi, err = os.Stat(name)
		}
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		total += fi.Size()
	}
	return total
}

// isTerminal reports whether w is a terminal: the bar is for people, not
// for logs and pipes.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

type countingReader struct {
	r   io.Reader
	add func(int)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.add(n)
	}
	return n, err
}
