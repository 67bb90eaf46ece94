-- Baseline: what later tables rely on.
--
-- Conventions for every migration in this folder (see docs/ARCHITECTURE.md):
--   * tables plural, `id` primary keys, `<singular>_id` foreign keys, uppercase SQL keywords;
--   * expand/contract: a migration never breaks the binary that is running while it applies
--     (add columns nullable or with a default, backfill, and drop only in a later release);
--   * timestamps are `timestamptz`, written by the database.

-- Keeps `updated_at` right whichever code path writes a row. A table opts in with:
--   CREATE TRIGGER set_updated_at BEFORE UPDATE ON <table>
--     FOR EACH ROW EXECUTE FUNCTION set_updated_at();
-- A trigger rather than `updated_at = now()` in each UPDATE: one forgotten statement would
-- silently leave a stale value.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
