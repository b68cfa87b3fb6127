-- Housekeeping purges published outbox rows by age; find them without scanning the table.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
