package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Rate runs do from clients goroutines for d and returns requests per
// second; do returns false on a failed request.
func Rate(ctx context.Context, clients int, d time.Duration, do func(client *http.Client, i int64) bool) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var n, failed, next atomic.Int64
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
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
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d requests failed", f)
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
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
func (e *Env) Healthz(ctx context.Context, clients int, d time.Duration) (float64, error) {
	return Rate(ctx, clients, d, func(c *http.Client, _ int64) bool { return e.request(c, "GET", "/healthz", nil, 200) })
}

var mintBody = []byte(`{"identity":"alice@example.com","ttl":3600,"grants":{"chat":{"service_sid":"IS00000000000000000000000000000001","endpoint_id":"alice-iphone"}}}`)

// Mint mints tokens as fast as the server answers.
func (e *Env) Mint(ctx context.Context, clients int, d time.Duration) (float64, error) {
	return Rate(ctx, clients, d, func(c *http.Client, _ int64) bool {
		return e.request(c, "POST", "/v1/accounts/"+e.AccountSID+"/tokens", mintBody, 201)
	})
}

// Verify verifies distinct tokens (each records one new authenticate event).
func (e *Env) Verify(ctx context.Context, clients int, d time.Duration, pool int) (float64, error) {
	tokens := make([][]byte, pool)
	client := &http.Client{}
	for i := range tokens {
		body := fmt.Appendf(nil, `{"identity":"user-%d@example.com","grants":{"chat":{"service_sid":"IS00000000000000000000000000000001"}}}`, i)
		req, _ := http.NewRequest("POST", e.BaseURL+"/v1/accounts/"+e.AccountSID+"/tokens", bytes.NewReader(body))
		req.SetBasicAuth(e.KeySID, e.Secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		var out struct{ Token string }
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		tokens[i] = fmt.Appendf(nil, `{"token":%q}`, out.Token)
	}
	return Rate(ctx, clients, d, func(c *http.Client, i int64) bool {
		return e.request(c, "POST", "/v1/accounts/"+e.AccountSID+"/tokens/verify", tokens[i%int64(pool)], 200)
	})
}
