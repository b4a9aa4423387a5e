// Package usage holds tally's domain: accounts, keys and roles, the eight
// activities and their sources, events and their validation rules, identities
// and calendar months, and the error kinds every other package maps to.
//
// It imports neither HTTP nor SQL packages, so the rules of the contract live
// in one place and are tested without a server or a database.
package usage
