-- The job outbox: jobs written in the same transaction as the database change they belong
-- to, so that a job is queued if and only if its change committed, whether or not Redis was
-- up at that moment. The `relay_outbox` periodic job moves rows to the Redis queue (oldest
-- first) and deletes them; a row lives only until Redis has its job.
CREATE TABLE job_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The job type's stable name (`Job::NAME`) and its JSON payload.
    job_name   text NOT NULL,
    payload    jsonb NOT NULL,
    -- When the job should run; NULL for as soon as possible.
    run_at     timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Set when the row can never be relayed (an unknown job name or a payload that does not fit
    -- its type: a bug). Such rows stay for an operator to inspect and are skipped by the relay.
    last_error text
);
