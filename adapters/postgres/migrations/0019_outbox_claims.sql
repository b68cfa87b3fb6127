-- The relay claims outbox rows with a lease (issue 12). It used to hold their row locks in a transaction while it
-- published them: BEGIN, the claim, the mark, COMMIT, four round trips a batch, and three for every relay that woke
-- to find nothing. A claim is now one statement that sets `claimed_until`, and the mark another: other relays skip
-- the rows until the lease runs out. A relay that fails to publish gives its rows back at once; one that dies keeps
-- them until its lease ends (`adapters/postgres/outbox_feed.py`), and they are then published again (at least once).
ALTER TABLE outbox ADD COLUMN claimed_until timestamptz;
