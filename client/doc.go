// Package client is tally's Go client, for the backend of a chat platform:
// it reports what users do, mints the access tokens the platform's SDK
// clients connect with, verifies them, and reads the monthly reports.
//
// # Events
//
// Track queues an event and returns at once; the client sends events in
// batches of up to Config.BatchSize, when a batch is full or
// Config.FlushInterval after its first event, from a few goroutines of its
// own. What the server cannot take now (no answer, 408, 429, 502, 503, 504)
// is sent again after an exponential backoff with full jitter, never sooner
// than the server's Retry-After. That is safe because every event has an
// id, its idempotency key: Track gives one (a UUIDv7) to an event without,
// and an event whose id the server already holds counts as a duplicate,
// never twice. A batch whose answer was lost on the way back is sent again
// and counted as duplicates.
//
// Track checks an event with the server's own rules first and returns what
// the server would have answered (a *Error with Status 422) without sending
// it. What the server refuses anyway (another 4xx) goes to Config.OnError
// and comes back from the next Flush; the rest of its batch is sent again.
//
// Track waits when Config.MaxQueue events are unacknowledged, until its
// context ends: a backend that produces faster than tally takes slows down
// instead of growing without bound. Flush waits until every event tracked
// before it is acknowledged; Close flushes and stops the client's
// goroutines. Call Close before the program exits, or the events of the
// last FlushInterval are lost.
//
// # A backend
//
//	func main() {
//		ctx := context.Background()
//		c, err := client.New(client.Config{
//			BaseURL: "https://tally.example.com",
//			KeySID:  os.Getenv("TALLY_KEY_SID"),    // an ingest key
//			Secret:  os.Getenv("TALLY_KEY_SECRET"), // (the account is the key's)
//			OnError: func(err error) { log.Printf("tally: %v", err) },
//		})
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer func() {
//			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//			defer cancel()
//			if err := c.Close(ctx); err != nil {
//				log.Printf("tally: %v", err)
//			}
//		}()
//
//		// Sign-in: a token for the SDK, with chat and sync grants.
//		tok, err := c.MintToken(ctx, client.TokenRequest{
//			Identity: "alice@example.com",
//			TTL:      time.Hour,
//			Chat:     &client.ChatGrant{ServiceSID: "IS0123", EndpointID: "alice-phone"},
//			Sync:     &client.SyncGrant{ServiceSID: "IS4567"},
//		})
//		if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println("hand to the SDK:", tok.Token, "until", tok.ExpiresAt)
//
//		// A message sent on the user's behalf through REST.
//		err = c.Track(ctx, client.Event{
//			Activity: "send", Source: "rest",
//			ServiceSID: "IS0123", Identity: "alice@example.com",
//		})
//		if err != nil {
//			log.Printf("not tracked: %v", err) // invalid, or ctx ended while the queue was full
//		}
//	}
//
// The examples show the calls one by one, and examples/chat-backend is a
// small web server built on them.
package client
