package console

import (
	"math"
	"strconv"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// chartMonths is how many months the account page's chart shows, ending
// with the month on the page (§12).
const chartMonths = 13

// chart is the inline SVG bar chart of active users per month, laid out
// here so that the template only writes numbers into attributes (no inline
// style: the Content-Security-Policy forbids it).
type chart struct {
	Width, Height float64
	Left, Bottom  float64 // the plot's left edge and baseline
	Points        []chartPoint
	Ticks         []chartTick
	Label         string // what the chart shows, for screen readers
}

type chartPoint struct {
	Month       string
	Value       int64
	X, Y, W, H  float64
	LabelX      float64
	Short       string // the month's short name under its bar
	Year        string // under January and the first bar
	Provisional bool   // no final version stored yet
	Selected    bool
}

type chartTick struct {
	Y     float64
	Value int64
}

// newChart lays out the months ending with last from an account's months
// (as the API's report list gives them: the latest version's count, else
// the provisional one). A month without events counts 0, and is marked
// provisional only from the current month on: a past month without events
// has no report to revise.
func newChart(last, current usage.Month, months []postgres.MonthSummary) chart {
	const (
		width, height = 720.0, 260.0
		left, right   = 64.0, 8.0
		top, bottom   = 16.0, 44.0
		plotW, plotH  = width - left - right, height - top - bottom
		slot          = plotW / chartMonths
		barW          = slot * 0.68
		tickN         = 4
	)
	byMonth := make(map[usage.Month]postgres.MonthSummary, len(months))
	for _, m := range months {
		byMonth[m.Month] = m
	}
	first := last
	for range chartMonths - 1 {
		first = first.Prev()
	}
	var peak int64
	for m, i := first, 0; i < chartMonths; m, i = m.Next(), i+1 {
		peak = max(peak, byMonth[m].ActiveUsers)
	}
	step := niceStep(float64(peak) / tickN)
	scaleTop := step * math.Max(1, math.Ceil(float64(peak)/step))

	c := chart{Width: width, Height: height, Left: left, Bottom: top + plotH,
		Label: "Active users per month, " + first.String() + " to " + last.String()}
	for v := 0.0; v <= scaleTop+step/2; v += step {
		c.Ticks = append(c.Ticks, chartTick{Y: round1(top + plotH - v/scaleTop*plotH), Value: int64(v)})
	}
	for m, i := first, 0; i < chartMonths; m, i = m.Next(), i+1 {
		s, listed := byMonth[m]
		h := float64(s.ActiveUsers) / scaleTop * plotH
		x := left + float64(i)*slot + (slot-barW)/2
		p := chartPoint{Month: m.String(), Value: s.ActiveUsers,
			X: round1(x), Y: round1(top + plotH - h), W: round1(barW), H: round1(h),
			LabelX: round1(x + barW/2), Short: m.Start().Format("Jan"),
			Provisional: s.Version == nil && (listed || !m.Start().Before(current.Start())), Selected: m == last}
		if i == 0 || m.Month == 1 {
			p.Year = strconv.Itoa(m.Year)
		}
		c.Points = append(c.Points, p)
	}
	return c
}

// niceStep rounds a tick step up to 1, 2 or 5 times a power of ten, at
// least 1 (counts are whole users).
func niceStep(raw float64) float64 {
	if raw <= 1 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
