-- Lookalike groups read from the partial index alone (issue 25): the
-- identity that is a group's key, whose lookalike was NULL (migration
-- 00017: the key is the identity itself), is marked with its own identity
-- as key once another identity of its service and month has that key.
-- Every member of a group then has its key set, and counting the groups
-- no longer probes month_users_pkey once per key for the identity that is
-- the key (1.3 s of the statistics of a 1 M-user month). The fold keeps
-- the mark (internal/postgres/fold.go, pendingLookalike and
-- foldLookalikeSelves); here the rows already folded get it. Pending
-- events need nothing: the fold and the reads merging them in mark them.
--
-- On Citus the update is routed per shard: the subquery is joined on the
-- distribution column, account_sid.
-- +goose Up
UPDATE month_users m SET lookalike = m.identity
WHERE m.lookalike IS NULL
  AND EXISTS (SELECT 1 FROM month_users k WHERE k.account_sid = m.account_sid AND k.month = m.month
              AND k.service_sid = m.service_sid AND k.lookalike = m.identity);

-- +goose Down
UPDATE month_users SET lookalike = NULL WHERE lookalike = identity;
