-- Accounts: when the owner of an account's address first proved control of it.
--
-- `email_verified_at` says whether the *current* address is verified (an admin changing the
-- address clears it). `first_verified_at` says whether anyone ever proved control of an
-- address of this account. Until then every credential on it (password, TOTP, sessions) was
-- set by whoever signed up, who may not own the address: the first proof of control without
-- knowledge of the password discards them (pre-hijacked accounts, docs/SECURITY.md), and an
-- account nobody claims is purged after `LABS_UNVERIFIED_ACCOUNT_TTL`.
ALTER TABLE users ADD COLUMN first_verified_at timestamptz;
UPDATE users SET first_verified_at = email_verified_at WHERE email_verified_at IS NOT NULL;

-- Bumped by every change that must end the logins in flight: an address claim that discards
-- the signup's credentials, a new password (reset or change). A login reads it with the
-- credentials it checks, and opens its session only if it is unchanged (under a share lock of
-- the row): a login whose password check began before the change cannot slip a session in
-- after the change revoked the others.
ALTER TABLE users ADD COLUMN credentials_epoch integer NOT NULL DEFAULT 0;

-- The purge's scan: only never-claimed accounts, oldest first.
CREATE INDEX users_unclaimed_created_at_idx ON users (created_at) WHERE first_verified_at IS NULL;

-- Failed attempts now count against every one-time token (a verification link is tried with
-- the signup's password), not only MFA challenges.
COMMENT ON COLUMN one_time_tokens.attempts IS 'Attempts made with this token (each claimed atomically before it is checked).';
