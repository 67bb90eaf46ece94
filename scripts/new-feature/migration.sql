-- The __features__ feature's table (crates/labs___features__). Each row belongs to one account
-- and goes with it. A deleted row is kept `deleted_at` for 30 days (support, undo), then the
-- hourly `purge_deleted___features__` job removes it.
CREATE TABLE __features__ (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    details text NOT NULL DEFAULT '' CHECK (char_length(details) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Set by the `__feature___created` job once the owner was told.
    confirmed_at timestamptz,
    deleted_at timestamptz
);

-- An owner's list, newest first, without the deleted ones.
CREATE INDEX __features___by_owner ON __features__ (user_id, created_at DESC) WHERE deleted_at IS NULL;
-- What the purge deletes.
CREATE INDEX __features___deleted ON __features__ (deleted_at) WHERE deleted_at IS NOT NULL;
