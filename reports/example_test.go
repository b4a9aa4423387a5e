package reports_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/tallyhq/tally/internal/usage"
	"github.com/tallyhq/tally/reports"
)

// finalReport is version 1 of October 2026 of an account with two services
// and a rate card: the report as the store hands it over.
func finalReport() usage.Report {
	version := 1
	through := time.Date(2026, 11, 1, 0, 4, 12, 0, time.UTC)
	return usage.Report{
		AccountSID:  "AC0123456789abcdef0123456789abcdef",
		Month:       usage.Month{Year: 2026, Month: time.October},
		Version:     &version,
		Status:      usage.StatusFinal,
		GeneratedAt: time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC),
		Checksum:    "5e1c0d3a", // shortened: a real one is 64 hex digits (usage.NewChecksum)
		Figures: usage.Figures{
			ActiveUsers:        1200,
			DistinctIdentities: 1150,
			EventsThrough:      &through,
			Services: []usage.ServiceFigures{
				{ServiceSID: "IS02", ActiveUsers: 200, NewUsers: 20, RESTOnlyUsers: 5,
					ByFirstActivity: map[usage.Activity]int64{usage.Authenticate: 200}},
				{ServiceSID: "IS01", ActiveUsers: 1000, NewUsers: 100,
					ByFirstActivity: map[usage.Activity]int64{usage.Authenticate: 900, usage.Send: 100}},
			},
		},
		RateCard: []byte(`{"currency":"USD","free_users":1000,"tiers":[{"up_to":null,"unit_price":"0.05"}]}`),
	}
}

// A report renders as the JSON the API serves: services sorted by SID and
// priced with the rate card stored with the report.
func ExampleNewReport() {
	r, err := reports.NewReport(finalReport())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Month, r.Status, *r.Version, r.ActiveUsers)
	for _, s := range r.Services {
		fmt.Println(s.ServiceSID, s.ActiveUsers)
	}
	b, err := json.Marshal(r.Billing)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	// Output:
	// 2026-10 final 1 1200
	// IS01 1000
	// IS02 200
	// {"currency":"USD","free_users":1000,"billable_users":200,"amount":"10.00","lines":[{"from":1001,"to":1200,"users":200,"unit_price":"0.05","amount":"10.00"}]}
}

// As CSV, a report is one row per service and a total row with an empty
// service_sid. The rows end in CRLF (RFC 4180), shown here as plain line
// ends.
func ExampleWriteReportCSV() {
	r, err := reports.NewReport(finalReport())
	if err != nil {
		log.Fatal(err)
	}
	var b bytes.Buffer
	if err := reports.WriteReportCSV(&b, r); err != nil {
		log.Fatal(err)
	}
	fmt.Print(strings.ReplaceAll(b.String(), "\r\n", "\n"))
	// Output:
	// account_sid,month,version,status,service_sid,active_users,new_users,rest_only_users
	// AC0123456789abcdef0123456789abcdef,2026-10,1,final,IS01,1000,100,0
	// AC0123456789abcdef0123456789abcdef,2026-10,1,final,IS02,200,20,5
	// AC0123456789abcdef0123456789abcdef,2026-10,1,final,,1200,120,5
}

// A roster is streamed row by row, so a month of a million users is never
// held in memory. An identity that a spreadsheet would run as a formula is
// written as text.
func ExampleRosterCSV() {
	var b bytes.Buffer
	w, err := reports.NewRosterCSV(&b)
	if err != nil {
		log.Fatal(err)
	}
	at := time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	for _, e := range []usage.RosterEntry{
		{ServiceSID: "IS01", Identity: "alice@example.com", FirstActivity: usage.Authenticate,
			FirstEventID: "evt-1", FirstActiveAt: at, LastActiveAt: at.Add(48 * time.Hour), Events: 12},
		{ServiceSID: "IS01", Identity: "=HYPERLINK(\"x\")", FirstActivity: usage.Send,
			FirstEventID: "evt-2", FirstActiveAt: at, LastActiveAt: at, Events: 1},
	} {
		if err := w.Write(e); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	fmt.Print(strings.ReplaceAll(b.String(), "\r\n", "\n"))
	// Output:
	// service_sid,identity,first_activity,first_event_id,first_active_at,last_active_at,events
	// IS01,alice@example.com,authenticate,evt-1,2026-10-05T12:00:00Z,2026-10-07T12:00:00Z,12
	// IS01,"'=HYPERLINK(""x"")",send,evt-2,2026-10-05T12:00:00Z,2026-10-05T12:00:00Z,1
}

// The platform's report of a month has one line per account; an account
// without a rate card has empty billing cells.
func ExampleWriteAccountLinesCSV() {
	r, err := reports.NewReport(finalReport())
	if err != nil {
		log.Fatal(err)
	}
	unpriced := reports.Report{AccountSID: "ACfedcba9876543210fedcba9876543210", Month: "2026-10",
		Status: usage.StatusProvisional, ActiveUsers: 7, Checksum: "9a8b7c6d"}
	lines := []reports.AccountLine{reports.NewAccountLine("Acme", r), reports.NewAccountLine("Initech", unpriced)}
	var b bytes.Buffer
	if err := reports.WriteAccountLinesCSV(&b, lines); err != nil {
		log.Fatal(err)
	}
	fmt.Print(strings.ReplaceAll(b.String(), "\r\n", "\n"))
	// Output:
	// account_sid,name,version,status,active_users,billable_users,currency,amount,checksum
	// AC0123456789abcdef0123456789abcdef,Acme,1,final,1200,200,USD,10.00,5e1c0d3a
	// ACfedcba9876543210fedcba9876543210,Initech,,provisional,7,,,,9a8b7c6d
}

// SafeCell keeps a spreadsheet from running a cell as a formula; other
// cells are unchanged.
func ExampleSafeCell() {
	for _, s := range []string{"alice", "=1+1", "-2", "@SUM(A1)", ""} {
		fmt.Printf("%q\n", reports.SafeCell(s))
	}
	// Output:
	// "alice"
	// "'=1+1"
	// "'-2"
	// "'@SUM(A1)"
	// ""
}

// A CSVWriter writes any table with the same quoting and formula guard as
// the reports.
func ExampleCSVWriter() {
	var b bytes.Buffer
	w, err := reports.NewCSVWriter(&b, "identity", "note")
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Write("bob", `said "hi", twice`); err != nil {
		log.Fatal(err)
	}
	if err := w.Write("+15551234567", ""); err != nil {
		log.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", b.String())
	// Output:
	// "identity,note\r\nbob,\"said \"\"hi\"\", twice\"\r\n'+15551234567,\r\n"
}
