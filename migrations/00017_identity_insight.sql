-- Identity insight (CONTRACT §7, issue 25): each user-month keeps its
-- identity's lookalike key and reserved characters, computed in Go at
-- ingestion (usage.LookalikeKey, usage.ReservedMask) and carried from
-- rollup_pending into month_users by the fold like identity_flags, so that
-- the statistics stay one pass over the month's users, never over events.
--
-- lookalike is NULL when the key is the identity itself, which it is for
-- most identities (lower-case ASCII without surrounding spaces): nothing is
-- stored for them, and since two identities of one service cannot both be
-- their own key, every group of lookalikes holds at least one row whose
-- lookalike is set. The partial index holds only those rows, so finding the
-- groups reads the few identities that are not their own key, and probes
-- month_users_pkey for the identity that is.
--
-- reserved has bit i set when the identity holds the i-th character of
-- usage.ReservedCharacters (! * ' ( ) ; : @ & = + $ , / ? % # [ ]).
--
-- Rows written before this migration: reserved is computed here exactly
-- (the characters are ASCII). The lookalike key needs Unicode's
-- normalization and case folding, which only the Go code has; for an ASCII
-- identity it is the identity lower-cased and trimmed of spaces, computed
-- here exactly. A non-ASCII identity of an earlier month is left NULL
-- (counted as its own key) until an event of it in that month is folded
-- again, which sets its key; new months are exact.
-- +goose Up
ALTER TABLE month_users ADD COLUMN lookalike text COLLATE "C", ADD COLUMN reserved integer NOT NULL DEFAULT 0;
ALTER TABLE rollup_pending ADD COLUMN lookalike text COLLATE "C", ADD COLUMN reserved integer NOT NULL DEFAULT 0;

UPDATE month_users SET reserved = (SELECT coalesce(bit_or(1 << (i - 1)), 0) FROM generate_series(1, 19) AS i
                                   WHERE strpos(identity, substr('!*''();:@&=+$,/?%#[]', i, 1)) > 0)
WHERE identity_flags & 1 <> 0;
UPDATE rollup_pending SET reserved = (SELECT coalesce(bit_or(1 << (i - 1)), 0) FROM generate_series(1, 19) AS i
                                      WHERE strpos(identity, substr('!*''();:@&=+$,/?%#[]', i, 1)) > 0)
WHERE identity_flags & 1 <> 0;

UPDATE month_users SET lookalike = btrim(lower(identity), ' ')
WHERE octet_length(identity) = char_length(identity) AND identity <> btrim(lower(identity), ' ');
UPDATE rollup_pending SET lookalike = btrim(lower(identity), ' ')
WHERE octet_length(identity) = char_length(identity) AND identity <> btrim(lower(identity), ' ');

CREATE INDEX month_users_lookalike ON month_users (account_sid, month, service_sid, lookalike)
WHERE lookalike IS NOT NULL;

-- +goose Down
DROP INDEX month_users_lookalike;
ALTER TABLE rollup_pending DROP COLUMN lookalike, DROP COLUMN reserved;
ALTER TABLE month_users DROP COLUMN lookalike, DROP COLUMN reserved;
