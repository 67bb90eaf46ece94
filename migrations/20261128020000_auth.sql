-- Accounts and credentials. What is stored of each secret (see docs/SECURITY.md):
--   passwords            argon2id PHC string
--   TOTP secrets         XChaCha20-Poly1305 ciphertext, key id first, user id as AAD
--   refresh and one-time tokens   SHA-256 of the token (the token itself is never stored)
--   email OTPs, recovery codes    HMAC-SHA256 under LABS_CODE_HASH_KEY

CREATE TABLE users (
    id                uuid PRIMARY KEY,
    -- Normalised (trimmed, lower-cased) by the application, so a plain unique index is exact.
    email             text NOT NULL,
    full_name         text,
    -- NULL: no password set (such an account cannot log in with a password).
    password_hash     text,
    is_admin          boolean NOT NULL DEFAULT false,
    -- An inactive account cannot log in, and its tokens stop working at once.
    is_active         boolean NOT NULL DEFAULT true,
    email_verified_at timestamptz,
    -- Sealed TOTP secret. Set at enrolment; effective only once `totp_enabled_at` is set by a
    -- first valid code.
    totp_secret       bytea,
    totp_enabled_at   timestamptz,
    -- The last TOTP time step accepted: a code of this step or an older one is a replay.
    totp_last_step    bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE TRIGGER set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- A session is one login on one device: the family of its rotating refresh tokens. Access
-- tokens name their session (`sid`), so revoking a session ends its access tokens too.
CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- Set once: logout, logout everywhere, password reset, refresh-token reuse.
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    -- Set when the token is exchanged. Presenting it again is a reuse: the whole session is
    -- revoked, since either the client or an attacker holds a stolen copy.
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

-- Single-use tokens sent by email (verification, password reset) or handed out between the
-- two login steps (MFA challenge).
CREATE TABLE one_time_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'mfa_challenge')),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    -- Wrong second factors tried against an MFA challenge.
    attempts   integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX one_time_tokens_user_id_idx ON one_time_tokens (user_id, purpose);

-- One live email OTP per user: a new one replaces the old one.
CREATE TABLE email_otps (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE recovery_codes (
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);
