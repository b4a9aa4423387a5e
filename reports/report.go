package reports

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/tallyhq/tally/internal/billing/pricing"
	"github.com/tallyhq/tally/internal/usage"
)

// Report is the JSON of a monthly report (CONTRACT §6).
type Report struct {
	AccountSID         string           `json:"account_sid"`
	Month              string           `json:"month"`
	Version            *int             `json:"version"`
	Status             string           `json:"status"`
	Supersedes         *int             `json:"supersedes"`
	AddedUsers         *int64           `json:"added_users"`
	GeneratedAt        time.Time        `json:"generated_at"`
	EventsThrough      *time.Time       `json:"events_through"`
	Checksum           string           `json:"checksum"`
	ActiveUsers        int64            `json:"active_users"`
	DistinctIdentities int64            `json:"distinct_identities"`
	Services           []Service        `json:"services"`
	Billing            *pricing.Billing `json:"billing"`
}

// Service is one service's figures in a report.
type Service struct {
	ServiceSID      string                   `json:"service_sid"`
	ActiveUsers     int64                    `json:"active_users"`
	NewUsers        int64                    `json:"new_users"`
	RESTOnlyUsers   int64                    `json:"rest_only_users"`
	ByFirstActivity map[usage.Activity]int64 `json:"by_first_activity"`
}

// NewReport renders a report, pricing it with the rate card stored with it.
func NewReport(r usage.Report) (Report, error) {
	out := Report{
		AccountSID: r.AccountSID, Month: r.Month.String(), Version: r.Version, Status: r.Status,
		Supersedes: r.Supersedes, AddedUsers: r.AddedUsers, GeneratedAt: r.GeneratedAt.UTC(),
		EventsThrough: r.EventsThrough, Checksum: r.Checksum, ActiveUsers: r.ActiveUsers,
		DistinctIdentities: r.DistinctIdentities, Services: make([]Service, 0, len(r.Services)),
	}
	services := append([]usage.ServiceFigures(nil), r.Services...)
	sort.Slice(services, func(i, j int) bool { return services[i].ServiceSID < services[j].ServiceSID })
	for _, s := range services {
		by := s.ByFirstActivity
		if by == nil {
			by = map[usage.Activity]int64{}
		}
		out.Services = append(out.Services, Service{ServiceSID: s.ServiceSID, ActiveUsers: s.ActiveUsers,
			NewUsers: s.NewUsers, RESTOnlyUsers: s.RESTOnlyUsers, ByFirstActivity: by})
	}
	if r.RateCard != nil {
		var rc pricing.RateCard
		if err := json.Unmarshal(r.RateCard, &rc); err != nil {
			return Report{}, fmt.Errorf("rate card of %s: %w", r.AccountSID, err)
		}
		b := pricing.Price(r.ActiveUsers, rc)
		out.Billing = &b
	}
	return out, nil
}

// ReportCSVHeader is the header row of a report as CSV.
var ReportCSVHeader = []string{"account_sid", "month", "version", "status", "service_sid", "active_users", "new_users", "rest_only_users"}

// WriteReportCSV writes one row per service and a total row whose
// service_sid is empty.
func WriteReportCSV(w io.Writer, r Report) error {
	cw, err := NewCSVWriter(w, ReportCSVHeader...)
	if err != nil {
		return err
	}
	version := ""
	if r.Version != nil {
		version = strconv.Itoa(*r.Version)
	}
	var newUsers, restOnly int64
	for _, s := range r.Services {
		newUsers += s.NewUsers
		restOnly += s.RESTOnlyUsers
		if err := cw.Write(r.AccountSID, r.Month, version, r.Status, s.ServiceSID, itoa(s.ActiveUsers), itoa(s.NewUsers), itoa(s.RESTOnlyUsers)); err != nil {
			return err
		}
	}
	if err := cw.Write(r.AccountSID, r.Month, version, r.Status, "", itoa(r.ActiveUsers), itoa(newUsers), itoa(restOnly)); err != nil {
		return err
	}
	return cw.Flush()
}

// RosterEntry is one row of a roster.
type RosterEntry struct {
	ServiceSID    string         `json:"service_sid"`
	Identity      string         `json:"identity"`
	FirstActivity usage.Activity `json:"first_activity"`
	FirstEventID  string         `json:"first_event_id"`
	FirstActiveAt time.Time      `json:"first_active_at"`
	LastActiveAt  time.Time      `json:"last_active_at"`
	Events        int64          `json:"events"`
}

// NewRosterEntry renders a roster entry.
func NewRosterEntry(e usage.RosterEntry) RosterEntry {
	return RosterEntry{ServiceSID: e.ServiceSID, Identity: e.Identity, FirstActivity: e.FirstActivity,
		FirstEventID: e.FirstEventID, FirstActiveAt: e.FirstActiveAt.UTC(), LastActiveAt: e.LastActiveAt.UTC(), Events: e.Events}
}

// RosterCSVHeader is the header row of a roster as CSV.
var RosterCSVHeader = []string{"service_sid", "identity", "first_activity", "first_event_id", "first_active_at", "last_active_at", "events"}

// RosterCSV streams a roster as CSV, flushing every few hundred rows so a
// million-row roster is never held in memory.
type RosterCSV struct {
	cw *CSVWriter
	n  int
}

// NewRosterCSV writes the header row.
func NewRosterCSV(w io.Writer) (*RosterCSV, error) {
	cw, err := NewCSVWriter(w, RosterCSVHeader...)
	if err != nil {
		return nil, err
	}
	return &RosterCSV{cw: cw}, nil
}

// Write writes one roster entry.
func (r *RosterCSV) Write(e usage.RosterEntry) error {
	err := r.cw.Write(e.ServiceSID, e.Identity, string(e.FirstActivity), e.FirstEventID,
		e.FirstActiveAt.UTC().Format(time.RFC3339Nano), e.LastActiveAt.UTC().Format(time.RFC3339Nano), itoa(e.Events))
	if err != nil {
		return err
	}
	if r.n++; r.n%512 == 0 {
		return r.cw.Flush()
	}
	return nil
}

// Flush ends the CSV.
func (r *RosterCSV) Flush() error { return r.cw.Flush() }

// AccountLine is one account of the platform-wide report of a month.
type AccountLine struct {
	AccountSID    string  `json:"account_sid"`
	Name          string  `json:"name"`
	Version       *int    `json:"version"`
	Status        string  `json:"status"`
	ActiveUsers   int64   `json:"active_users"`
	BillableUsers *int64  `json:"billable_users"`
	Currency      *string `json:"currency"`
	Amount        *string `json:"amount"`
	Checksum      string  `json:"checksum"`
}

// NewAccountLine renders an account's report as a line of the platform
// report; billing members are null when the account has no rate card.
func NewAccountLine(name string, r Report) AccountLine {
	l := AccountLine{AccountSID: r.AccountSID, Name: name, Version: r.Version, Status: r.Status,
		ActiveUsers: r.ActiveUsers, Checksum: r.Checksum}
	if r.Billing != nil {
		b := r.Billing.BillableUsers
		cur := r.Billing.Currency
		amt := r.Billing.Amount.StringFixed(pricing.MinorUnits(cur))
		l.BillableUsers, l.Currency, l.Amount = &b, &cur, &amt
	}
	return l
}

// AccountLinesCSVHeader is the header row of the platform report as CSV.
var AccountLinesCSVHeader = []string{"account_sid", "name", "version", "status", "active_users", "billable_users", "currency", "amount", "checksum"}

// WriteAccountLinesCSV writes the platform report as CSV.
func WriteAccountLinesCSV(w io.Writer, lines []AccountLine) error {
	cw, err := NewCSVWriter(w, AccountLinesCSVHeader...)
	if err != nil {
		return err
	}
	for _, l := range lines {
		version, billable, currency, amount := "", "", "", ""
		if l.Version != nil {
			version = strconv.Itoa(*l.Version)
		}
		if l.BillableUsers != nil {
			billable, currency, amount = itoa(*l.BillableUsers), *l.Currency, *l.Amount
		}
		if err := cw.Write(l.AccountSID, l.Name, version, l.Status, itoa(l.ActiveUsers), billable, currency, amount, l.Checksum); err != nil {
			return err
		}
	}
	return cw.Flush()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
