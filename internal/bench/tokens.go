package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Throughput is what a rate measurement found: requests per second, and
// the CPU time a request cost in the server, in the load generator (this
// process) and on the whole machine (those two, the database and the
// kernel's work for them). The costs vary less than the rates on a shared
// machine, and tell where a slower request spends.
type Throughput struct {
	PerSecond               float64
	Server, Client, Machine time.Duration
}

// rate runs do from clients goroutines for d; do returns false on a failed
// request.
func (e *Env) rate(ctx context.Context, clients int, d time.Duration, do func(client *http.Client, i int64) bool) (Throughput, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var n, failed, next atomic.Int64
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	server, self, machine := ProcessCPU(e.Server.Process.Pid), ProcessCPU(os.Getpid()), MachineCPU()
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if do(client, next.Add(1)-1) {
					n.Add(1)
				} else if ctx.Err() == nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		return Throughput{}, fmt.Errorf("%d requests failed", f)
	}
	done := max(n.Load(), 1)
	return Throughput{
		PerSecond: float64(n.Load()) / elapsed.Seconds(),
		Server:    (ProcessCPU(e.Server.Process.Pid) - server) / time.Duration(done),
		Client:    (ProcessCPU(os.Getpid()) - self) / time.Duration(done),
		Machine:   (MachineCPU() - machine) / time.Duration(done),
	}, nil
}

func (e *Env) request(client *http.Client, method, path string, body []byte, want int) bool {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.BaseURL+path, r)
	if body != nil {
		req.SetBasicAuth(e.KeySID, e.Secret)
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == want
}

// Healthz is the bare HTTP stack: no auth, no database.
func (e *Env) Healthz(ctx context.Context, clients int, d time.Duration) (Throughput, error) {
	return e.rate(ctx, clients, d, func(c *http.Client, _ int64) bool { return e.request(c, "GET", "/healthz", nil, 200) })
}

var mintBody = []byte(`{"identity":"alice@example.com","ttl":3600,"grants":{"chat":{"service_sid":"IS00000000000000000000000000000001","endpoint_id":"alice-iphone"}}}`)

// Mint mints tokens as fast as the server answers.
func (e *Env) Mint(ctx context.Context, clients int, d time.Duration) (Throughput, error) {
	return e.rate(ctx, clients, d, func(c *http.Client, _ int64) bool {
		return e.request(c, "POST", "/v1/accounts/"+e.AccountSID+"/tokens", mintBody, 201)
	})
}

// Verify verifies distinct tokens (each records one new authenticate event)
// from a pool of pool tokens minted first; pool must exceed the requests
// made in d, or some verifications repeat a token (and record nothing new).
func (e *Env) Verify(ctx context.Context, clients int, d time.Duration, pool int) (Throughput, error) {
	tokens := make([][]byte, pool)
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			client := &http.Client{}
			for i := next.Add(1) - 1; i < int64(pool); i = next.Add(1) - 1 {
				body := fmt.Appendf(nil, `{"identity":"user-%d@example.com","grants":{"chat":{"service_sid":"IS00000000000000000000000000000001"}}}`, i)
				req, _ := http.NewRequestWithContext(ctx, "POST", e.BaseURL+"/v1/accounts/"+e.AccountSID+"/tokens", bytes.NewReader(body))
				req.SetBasicAuth(e.KeySID, e.Secret)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					errc <- err
					return
				}
				var out struct{ Token string }
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if err != nil || out.Token == "" {
					errc <- fmt.Errorf("mint token %d: status %d: %v", i, resp.StatusCode, err)
					return
				}
				tokens[i] = fmt.Appendf(nil, `{"token":%q}`, out.Token)
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return Throughput{}, err
	}
	var repeated atomic.Bool
	rate, err := e.rate(ctx, clients, d, func(c *http.Client, i int64) bool {
		if i >= int64(pool) {
			repeated.Store(true)
		}
		return e.request(c, "POST", "/v1/accounts/"+e.AccountSID+"/tokens/verify", tokens[i%int64(pool)], 200)
	})
	if err == nil && repeated.Load() {
		return Throughput{}, fmt.Errorf("more verifications than the %d tokens minted: raise the pool", pool)
	}
	return rate, err
}
