package billing

import "github.com/tallyhq/tally/internal/billing/pricing"

// The rate card and its pricing live in package pricing, which imports no
// store, so that reports/ prices a report without importing pgx through the
// job. These names stay for the callers not yet moved (httpapi, alerts).

// RateCard is an account's price list.
//
// Deprecated: use pricing.RateCard.
type RateCard = pricing.RateCard

// Tier is one price band of a rate card.
//
// Deprecated: use pricing.Tier.
type Tier = pricing.Tier

// Billing is the "billing" member of a report.
//
// Deprecated: use pricing.Billing.
type Billing = pricing.Billing

// Line is one line of a report's billing.
//
// Deprecated: use pricing.Line.
type Line = pricing.Line

// Price prices activeUsers with rc.
//
// Deprecated: use pricing.Price.
func Price(activeUsers int64, rc RateCard) Billing { return pricing.Price(activeUsers, rc) }

// MinorUnits is the number of decimals of currency's minor unit.
//
// Deprecated: use pricing.MinorUnits.
func MinorUnits(currency string) int32 { return pricing.MinorUnits(currency) }
