package token

import (
	"crypto/sha256"
	"encoding/hex"
)

// EventID is the idempotency id of the authenticate event recorded when tok
// is verified, for one grant ("chat" or "data_sync"). It hashes the whole
// token and the grant rather than using the jti, because a jti is not unique:
// two tokens of one key minted in the same second share it. Verifying the
// same token again yields the same id, so it records nothing new. The id is
// "auth-" and 64 hex digits (69 bytes), well under the 128-byte limit on
// event ids. The NUL between token and grant keeps the pair unambiguous, as a
// grant name holds no NUL.
func EventID(tok, grant string) string {
	h := sha256.New()
	h.Write([]byte(tok))
	h.Write([]byte{0})
	h.Write([]byte(grant))
	return "auth-" + hex.EncodeToString(h.Sum(nil))
}
