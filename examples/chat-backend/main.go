// Command chat-backend is the smallest backend of a chat platform metered
// by tally: it signs its users in (a stub that trusts any name), mints each
// a Twilio-format access token with chat and sync grants through the tally
// client, refreshes it when the browser's SDK asks, and tracks a send
// activity for every message it relays. See docs/client.md for the browser
// side.
//
//	TALLY_BASE_URL=http://127.0.0.1:8080 TALLY_KEY_SID=SK… TALLY_KEY_SECRET=… \
//	CHAT_SERVICE_SID=IS… SYNC_SERVICE_SID=IS… go run ./examples/chat-backend
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/tallyhq/tally/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(ctx, os.Getenv, log); err != nil {
		log.Error("chat-backend", "err", err)
		os.Exit(1)
	}
}

// config is read from the environment once.
type config struct {
	addr, chatService, syncService string
	tally                          client.Config
}

func readConfig(getenv func(string) string) (config, error) {
	c := config{addr: getenv("ADDR"), chatService: getenv("CHAT_SERVICE_SID"), syncService: getenv("SYNC_SERVICE_SID"),
		tally: client.Config{BaseURL: getenv("TALLY_BASE_URL"), KeySID: getenv("TALLY_KEY_SID"), Secret: getenv("TALLY_KEY_SECRET")}}
	if c.addr == "" {
		c.addr = "127.0.0.1:3000"
	}
	if c.chatService == "" || c.syncService == "" {
		return c, errors.New("set CHAT_SERVICE_SID and SYNC_SERVICE_SID to the services users connect to")
	}
	return c, nil
}

func run(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
	cfg, err := readConfig(getenv)
	if err != nil {
		return err
	}
	// Events the server refuses are logged, once, here.
	cfg.tally.OnError = func(err error) { log.Error("tally refused events", "err", err) }
	tc, err := client.New(cfg.tally)
	if err != nil {
		return err
	}
	b := &backend{tally: tc, chatService: cfg.chatService, syncService: cfg.syncService, sessions: map[string]session{}}
	srv := &http.Server{Addr: cfg.addr, Handler: b.routes(), ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("chat-backend listening", "addr", cfg.addr)
	select {
	case err = <-errc:
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = srv.Shutdown(shutdown)
	}
	// Whatever was tracked reaches tally before the process ends.
	closing, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(ignoreClosed(err), tc.Close(closing))
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// backend holds the signed-in users and the tally client.
type backend struct {
	tally                    *client.Client
	chatService, syncService string

	mu       sync.Mutex
	sessions map[string]session // by session cookie
}

type session struct{ identity, device string }

func (b *backend) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signin", b.signIn)
	mux.HandleFunc("POST /token", b.refreshToken)
	mux.HandleFunc("POST /messages", b.sendMessage)
	return mux
}

// signIn is the stub: any name signs in. A real backend checks a password
// or an identity provider here; what follows is the same.
func (b *backend) signIn(w http.ResponseWriter, r *http.Request) {
	var req struct{ Name, Device string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
		http.Error(w, `want {"name": "…", "device": "…"}`, http.StatusBadRequest)
		return
	}
	id := make([]byte, 16)
	rand.Read(id)
	sid := hex.EncodeToString(id)
	s := session{identity: req.Name, device: req.Device}
	b.mu.Lock()
	b.sessions[sid] = s
	b.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "session", Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	b.writeToken(w, r, s)
}

// refreshToken mints a new token for the signed-in user: the browser calls
// it on the SDK's tokenAboutToExpire.
func (b *backend) refreshToken(w http.ResponseWriter, r *http.Request) {
	s, ok := b.session(r)
	if !ok {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	b.writeToken(w, r, s)
}

// writeToken mints a token with chat and sync grants. Minting is not an
// activity: the user becomes active when the SDK connects with it.
func (b *backend) writeToken(w http.ResponseWriter, r *http.Request, s session) {
	tok, err := b.tally.MintToken(r.Context(), client.TokenRequest{
		Identity: s.identity,
		TTL:      time.Hour,
		Chat:     &client.ChatGrant{ServiceSID: b.chatService, EndpointID: s.identity + ":" + s.device},
		Sync:     &client.SyncGrant{ServiceSID: b.syncService},
	})
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) && ce.Status == http.StatusUnprocessableEntity {
			http.Error(w, ce.Detail, http.StatusBadRequest) // a name tally refuses as an identity
			return
		}
		http.Error(w, "cannot mint a token now", http.StatusBadGateway)
		return
	}
	writeJSON(w, map[string]any{"identity": tok.Identity, "token": tok.Token, "expires_at": tok.ExpiresAt})
}

// sendMessage relays a message on the user's behalf through REST (the
// delivery itself is left out) and tracks it: a send from rest.
func (b *backend) sendMessage(w http.ResponseWriter, r *http.Request) {
	s, ok := b.session(r)
	if !ok {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	var req struct{ Conversation, Body string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Body == "" {
		http.Error(w, `want {"conversation": "CH…", "body": "…"}`, http.StatusBadRequest)
		return
	}
	// Track returns at once: the event is sent in a batch in the
	// background, and retried until tally has it.
	err := b.tally.Track(r.Context(), client.Event{Activity: "send", Source: "rest", ServiceSID: b.chatService,
		Identity: s.identity, ChannelSID: req.Conversation, EndpointID: s.identity + ":" + s.device})
	if err != nil {
		http.Error(w, fmt.Sprintf("not sent: %v", err), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (b *backend) session(r *http.Request) (session, bool) {
	c, err := r.Cookie("session")
	if err != nil {
		return session{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.sessions[c.Value]
	return s, ok
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
