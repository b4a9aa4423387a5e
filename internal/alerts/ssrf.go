package alerts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

// A webhook goes to a public address only, so that an account cannot make
// tally reach its private network (server-side request forgery). The rule
// is checked when an alert is created, on the URL and what its host
// resolves to, and again on every connection (Refuse, as a net.Dialer's
// Control hook), on the address actually dialled: a host that resolved to
// a public address at creation and to a private one later (DNS rebinding)
// is still refused.

// MaxURLLen bounds a webhook URL.
const MaxURLLen = 2048

// nonPublic are the IPv4 ranges that netip's predicates do not name and
// that are not public either.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and the broadcast address
	netip.MustParsePrefix("fec0::/10"),     // site-local (deprecated)
}

// nat64 embeds an IPv4 address in its last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// AddressClass names why an address is not public, or returns "" for a
// public one.
func AddressClass(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return "reserved"
		}
	}
	if nat64.Contains(a) {
		b := a.As16()
		return AddressClass(netip.AddrFrom4([4]byte(b[12:])))
	}
	return ""
}

// RefusedError is a connection refused because its address is not public.
type RefusedError struct {
	Addr  netip.Addr
	Class string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused to connect to %s: a %s address, not a public one", e.Addr, e.Class)
}

// Refuse is a net.Dialer Control hook that refuses to connect to an
// address that is not public. It runs after resolution, for each address
// dialled.
func Refuse(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to connect to %q: not an IP address and port", address)
	}
	if c := AddressClass(ap.Addr()); c != "" {
		return &RefusedError{Addr: ap.Addr().Unmap(), Class: c}
	}
	return nil
}

// Resolver resolves host names; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckURL validates a webhook URL at creation: absolute https (or http
// when allowPrivate), a host, no credentials, and, unless allowPrivate, a
// host that is a public address or resolves only to public ones. The error
// is a validation error of field webhook_url.
func CheckURL(ctx context.Context, raw string, allowPrivate bool, r Resolver) error {
	invalid := func(format string, args ...any) error { return usage.Invalid("webhook_url", format, args...) }
	if raw == "" {
		return invalid("is required")
	}
	if len(raw) > MaxURLLen {
		return invalid("must be at most %d bytes", MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return invalid("must be an absolute https URL such as https://example.com/hooks/tally")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowPrivate:
	default:
		return invalid("must be an https URL, not %.10q", u.Scheme)
	}
	if u.User != nil {
		return invalid("must not carry credentials: the signature authenticates tally")
	}
	host := u.Hostname()
	if host == "" {
		return invalid("must name a host")
	}
	if allowPrivate {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if c := AddressClass(a); c != "" {
			return invalid("%s is a %s address; webhooks go to public addresses only", host, c)
		}
		return nil
	}
	if strings.HasSuffix(strings.ToLower(host), ".localhost") || strings.EqualFold(host, "localhost") {
		return invalid("%s is a loopback name; webhooks go to public addresses only", host)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return invalid("host %s does not resolve", host)
		}
		return invalid("host %s could not be resolved", host)
	}
	for _, a := range addrs {
		if c := AddressClass(a); c != "" {
			return invalid("host %s resolves to %s, a %s address; webhooks go to public addresses only", host, a.Unmap(), c)
		}
	}
	return nil
}
