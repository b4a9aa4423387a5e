package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/tallyhq/tally/internal/billing"
	"github.com/tallyhq/tally/internal/billing/pricing"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
	"github.com/tallyhq/tally/reports"
)

func (e *env) reportCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "report", Short: "The monthly report job"}
	var month string
	var accounts []string
	run := &cobra.Command{Use: "run", Short: "Run the monthly job now for a month (all accounts, or --account)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := usage.ParseMonth(month)
			if err != nil {
				return fmt.Errorf("--month %q: want YYYY-MM", month)
			}
			for _, a := range accounts {
				if !usage.IsAccountSID(a) {
					return fmt.Errorf("--account %q is not an account SID", a)
				}
			}
			ctx := cmd.Context()
			pool, err := openPool(ctx, e.cfg.databaseURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			store := postgres.New(pool, time.Now)
			names := map[string]string{}
			all, err := store.Accounts(ctx)
			if err != nil {
				return err
			}
			for _, a := range all {
				names[a.SID] = a.Name
			}
			if len(accounts) == 0 {
				for _, a := range all {
					accounts = append(accounts, a.SID)
				}
			}
			job := &billing.Job{Store: store, Now: time.Now, FinalizeAfter: e.cfg.finalizeAfter}
			progress := newProgress(e.stdout, len(accounts))
			w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			var rows []string
			for i, a := range accounts {
				if _, ok := names[a]; !ok {
					return fmt.Errorf("account %s: %w", a, usage.ErrNotFound)
				}
				res, err := job.Run(ctx, a, m)
				if err != nil {
					return err
				}
				out, err := reports.NewReport(res.Report)
				if err != nil {
					return err
				}
				version, action := "-", "provisional"
				if out.Version != nil {
					version, action = fmt.Sprint(*out.Version), "unchanged"
					if res.Stored {
						action = "stored"
					}
				}
				amount := "-"
				if out.Billing != nil {
					amount = out.Billing.Currency + " " + out.Billing.Amount.StringFixed(pricing.MinorUnits(out.Billing.Currency))
				}
				rows = append(rows, strings.Join([]string{a, names[a], m.String(), version, out.Status, action,
					fmt.Sprint(out.ActiveUsers), amount}, "\t"))
				progress.step(i+1, a)
			}
			progress.done()
			fmt.Fprintln(w, "ACCOUNT\tNAME\tMONTH\tVERSION\tSTATUS\tRUN\tACTIVE USERS\tAMOUNT")
			for _, r := range rows {
				fmt.Fprintln(w, r)
			}
			return w.Flush()
		}}
	run.Flags().StringVar(&month, "month", "", "the month, YYYY-MM (required)")
	run.Flags().StringSliceVar(&accounts, "account", nil, "only these accounts (repeatable); default every account")
	_ = run.MarkFlagRequired("month")
	cmd.AddCommand(run)
	return cmd
}

// progress draws a bar on a terminal and prints plain lines otherwise, so
// logs of a scheduled CLI run stay readable.
type progress struct {
	w     io.Writer
	total int
	tty   bool
}

func newProgress(w io.Writer, total int) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, total: total, tty: ok && isatty.IsTerminal(f.Fd())}
}

func (p *progress) step(n int, what string) {
	if !p.tty {
		fmt.Fprintf(p.w, "[%d/%d] %s\n", n, p.total, what)
		return
	}
	const width = 30
	filled := width * n / max(p.total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), n, p.total)
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
