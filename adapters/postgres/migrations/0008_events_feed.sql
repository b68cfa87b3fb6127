-- The events feed (API.md §11) reads the outbox, which now keeps events for PAYMENTS_EVENTS_RETENTION instead of a
-- week. Feed order is (xid, id): the id of the transaction that wrote the event, then the event's own UUIDv7 (the
-- order it was made in, within that transaction). The feed serves only rows whose xid is below the xmin of its
-- snapshot (every transaction below it has ended), so no row can ever appear in front of one already served,
-- whatever order transactions commit in (docs/design.md, "Events feed").

-- Rows written before this migration get xid 0: they come first, in id order, which is the order they were made.
ALTER TABLE outbox ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE outbox ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX outbox_feed ON outbox (tenant_id, xid, id);
