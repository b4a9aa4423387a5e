package usage

import "testing"

func TestRandomLike(t *testing.T) {
	notRandom := []string{
		"alice@example.com", "bob", "+15551234567", "user_42", "Alice Smith", "alice.smith@example.co.uk",
		"john.doe+chat@gmail.com", "用户名", "ユーザー123", "😀", "x", "support", "admin-01", "room/42",
		"Mike O'Brien", "+44 20 7946 0958", "employee-000123", "deadbeef", "cafe-babe", "order-2026-10-05",
		"supercalifragilisticexpialidocious", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abcabcabcabcabcabcabcabc",
		"Jean-Baptiste_Emmanuel_Zorg", "customer_service_agent_number_seven", "123456789012345", // 15 digits
		"a1a1a1a1a1a1a1a1a1a1a1a1", "TheQuickBrownFoxJumps", "ABCDEFGHIJKLMNO", "sales.team.emea.north",
		"ticket#12345-b", "Zoë Ødegård", "bob_the_builder_2026", "1111111111111111111111", "0123456789",
	}
	random := []string{
		"550e8400-e29b-41d4-a716-446655440000", "550E8400-E29B-41D4-A716-446655440000",
		"550e8400e29b41d4a716446655440000", "user-550e8400-e29b-41d4-a716-446655440000",
		"f47ac10b-58cc-4372-a567-0e02b2c3d479", "00000000-0000-0000-0000-000000000000",
		"d41d8cd98f00b204e9800998ecf8427e", "da39a3ee5e6b4b0d3255bfef95601890afd80709",
		"1234567890abcdef", "ABCDEF0123456789", "session:9f86d081884c7d65", "1234567890123456",
		"anon_4e07408562bedb8b60ce05c1decfe3ad", "dGhpcyBpcyBhIHRlc3Qgc3RyaW5n",
		"aGVsbG8gd29ybGQgZm9vYmFyYmF6", "Zm9vYmFyYmF6cXV4cXV1eGNvcmdl",
		"kJ8sL2mN4pQ7rT1vX3zB5dF", "q8W3e5R7t9Y1u2I4o6P0aS", "x7Kp2Lm9Qr4Tz8Vn3Bw6Yc",
		"guest-Xk9mP2qL7rT4wZ8nB3vC", "tmp_A1b2C3d4E5f6G7h8I9j0K", "7GfhT3kLp9QxZ2mN8vR4sW1y",
		"Lm2Np4Qr6St8Uv0Wx3Yz5Ab", "user/aB3dE5gH7jK9mN1pQ3sT", "eyJhbGciOiJIUzI1NiJ9abcd",
		"sk_live_51HaBcDeFgHiJkLmNoPqR", "r4nd0mT0k3nV4lu3Xq9Z", "AbCdEfGh1234IjKlMnOp5678",
		"9b2e7c1f4a8d3e6b0c5f", "c2VjcmV0LXRva2VuLXZhbHVl",
	}
	if len(notRandom) < 30 || len(random) < 30 {
		t.Fatalf("want at least 30 on each side, have %d and %d", len(notRandom), len(random))
	}
	for _, s := range notRandom {
		if RandomLike(s) {
			t.Errorf("RandomLike(%q) = true, want false", s)
		}
	}
	for _, s := range random {
		if !RandomLike(s) {
			t.Errorf("RandomLike(%q) = false, want true", s)
		}
	}
}

func TestHasReserved(t *testing.T) {
	for _, c := range "!*'();:@&=+$,/?%#[]" {
		if !HasReserved("a" + string(c) + "b") {
			t.Errorf("%q not reserved", c)
		}
	}
	for _, s := range []string{"alice", "user_42", "a-b.c~d", "用户", "a b"} {
		if HasReserved(s) {
			t.Errorf("HasReserved(%q) = true", s)
		}
	}
	if IdentityFlags("alice@example.com") != FlagReserved || IdentityFlags("550e8400e29b41d4a716446655440000") != FlagRandomLike {
		t.Error("IdentityFlags")
	}
}

// TestByteSets holds the lookup tables to the classes they stand for, byte
// by byte.
func TestByteSets(t *testing.T) {
	for i := 0; i < 256; i++ {
		c := byte(i)
		digit, lower, upper := c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z'
		hex := digit || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
		b64 := digit || lower || upper || c == '+' || c == '/'
		reserved := false
		for _, r := range []byte("!*'();:@&=+$,/?%#[]") {
			reserved = reserved || c == r
		}
		if hexSet[c] != hex || base64Set[c] != b64 || reservedSet[c] != reserved {
			t.Errorf("byte %#x: hex %v base64 %v reserved %v, want %v %v %v", c, hexSet[c], base64Set[c], reservedSet[c], hex, b64, reserved)
		}
	}
}

// BenchmarkIdentityFlags classifies identities of the shapes ingestion
// sees most: an e-mail address, a phone number, a UUID, a token.
func BenchmarkIdentityFlags(b *testing.B) {
	ids := []string{"user-0012345@example.com", "+15551234567", "550e8400-e29b-41d4-a716-446655440000", "guest-Xk9mP2qL7rT4wZ8nB3vC"}
	for b.Loop() {
		for _, id := range ids {
			IdentityFlags(id)
		}
	}
}
