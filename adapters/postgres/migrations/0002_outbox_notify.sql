-- Wake the outbox relay when rows are committed, so events do not wait for a poll.
-- Statement-level: one notification per inserting statement; PostgreSQL folds
-- identical notifications of one transaction into one, delivered at commit.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
