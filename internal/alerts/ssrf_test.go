package alerts_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// classes are addresses of every class a webhook may not reach.
var classes = []struct{ addr, class string }{
	{"127.0.0.1", "loopback"},
	{"127.8.9.10", "loopback"},
	{"::1", "loopback"},
	{"::ffff:127.0.0.1", "loopback"}, // IPv4-mapped
	{"10.1.2.3", "private"},
	{"172.16.0.1", "private"},
	{"172.31.255.254", "private"},
	{"192.168.1.1", "private"},
	{"fd00::1", "private"},
	{"169.254.169.254", "link-local"}, // cloud metadata
	{"fe80::1", "link-local"},
	{"224.0.0.1", "multicast"},
	{"239.255.255.250", "multicast"},
	{"ff02::1", "multicast"},
	{"0.0.0.0", "unspecified"},
	{"::", "unspecified"},
	{"100.64.0.1", "reserved"},
	{"255.255.255.255", "reserved"},
	{"64:ff9b::a00:1", "private"}, // NAT64 of 10.0.0.1
}

// mapResolver resolves the names of its map and nothing else.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestCheckURLRefusesEveryNonPublicClass(t *testing.T) {
	for _, c := range classes {
		host := c.addr
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		err := alerts.CheckURL(t.Context(), "https://"+host+"/hook", false, mapResolver{})
		if !errors.Is(err, usage.ErrInvalid) || !strings.Contains(err.Error(), c.class) {
			t.Errorf("%s: %v, want a validation error naming %s", c.addr, err, c.class)
		}
		if err := alerts.CheckURL(t.Context(), "https://"+host+"/hook", true, nil); err != nil {
			t.Errorf("%s with private addresses allowed: %v", c.addr, err)
		}
	}
	r := mapResolver{
		"rebind.example": {netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("127.0.0.1")},
		"public.example": {netip.MustParseAddr("203.0.113.9")},
	}
	for url, want := range map[string]string{
		"https://rebind.example/h":    "loopback",
		"https://localhost:8443/h":    "loopback",
		"https://a.b.localhost/h":     "loopback",
		"http://public.example/h":     "https",
		"ftp://public.example/h":      "https",
		"https://u:p@public.example/": "credentials",
		"https:///nohost":             "host",
		"/relative":                   "absolute",
		"https://missing.example/h":   "does not resolve",
		"":                            "required",
	} {
		if err := alerts.CheckURL(t.Context(), url, false, r); !errors.Is(err, usage.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want a validation error saying %q", url, err, want)
		}
	}
	for _, url := range []string{"https://public.example/h", "https://203.0.113.9:8443/h?x=1", "https://[2001:db8::1]/h"} {
		if err := alerts.CheckURL(t.Context(), url, false, r); err != nil {
			t.Errorf("%q: %v", url, err)
		}
	}
	if err := alerts.CheckURL(t.Context(), "http://127.0.0.1:8080/h", true, nil); err != nil {
		t.Errorf("http to loopback with private addresses allowed: %v", err)
	}
}

// TestDialRefusesEveryNonPublicClass: the dialer's Control hook, which sees
// the address actually dialled, refuses each class.
func TestDialRefusesEveryNonPublicClass(t *testing.T) {
	for _, c := range classes {
		err := alerts.Refuse("tcp", netip.AddrPortFrom(netip.MustParseAddr(c.addr), 443).String(), nil)
		var re *alerts.RefusedError
		if !errors.As(err, &re) || re.Class != c.class {
			t.Errorf("%s: %v, want refused as %s", c.addr, err, c.class)
		}
	}
	if err := alerts.Refuse("tcp", "203.0.113.9:443", nil); err != nil {
		t.Errorf("public address: %v", err)
	}
}

// TestDeliveryRefusesLoopbackAtConnectTime: without AllowPrivate, a webhook
// stored for a loopback address (an IP or a name resolving to one, as after
// DNS rebinding) is not sent: the connection is refused, the receiver sees
// nothing, and the attempt is recorded as failed, to be retried.
func TestDeliveryRefusesLoopbackAtConnectTime(t *testing.T) {
	e := newEnv(t)
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	e.users(t, e.account, 0, 1)
	var as []postgres.Alert
	for _, host := range []string{"127.0.0.1", "localhost", "[::1]"} {
		// Stored directly, as if the host had resolved to a public address
		// when the alert was created.
		a, _ := e.alert(t, e.account, postgres.MetricActiveUsers, "1", "https://"+host+":"+itoa(port)+"/hook")
		as = append(as, a)
	}
	e.evaluate(t)
	w := &alerts.Worker{Store: e.store, Box: e.box, Now: e.clock,
		RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, BackoffBase: 1 << 40}
	if n, err := w.RunOnce(t.Context()); err != nil || n != len(as) {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the receiver on loopback got %d requests", hits.Load())
	}
	for _, a := range as {
		d := e.deliveries(t, a)[0]
		if d.Status != postgres.DeliveryPending || d.LastError == nil || !strings.Contains(*d.LastError, "loopback") || d.LastStatusCode != nil {
			t.Errorf("%s: delivery %+v (error %v)", a.WebhookURL, d, deref(d.LastError))
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
