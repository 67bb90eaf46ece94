-- Payments with Stripe. Stripe is the source of truth for money; these tables hold what the
-- application needs to answer without calling Stripe: who is which customer, and the state of
-- each subscription as of the newest webhook event applied.

-- One Stripe customer per user, created on first need.
CREATE TABLE stripe_customers (
    user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    customer_id text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every webhook event received, keyed by Stripe's id: a redelivery is a no-op. The receiver
-- stores it and queues its processing (outbox) in one transaction; the worker applies it and
-- sets processed_at.
CREATE TABLE stripe_events (
    id           text PRIMARY KEY,
    type         text NOT NULL,
    -- Stripe's `created` (seconds): the order in which events describe the world, which is not
    -- the order in which they arrive.
    created      timestamptz NOT NULL,
    livemode     boolean NOT NULL,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);
CREATE INDEX stripe_events_unprocessed_idx ON stripe_events (received_at) WHERE processed_at IS NULL;

CREATE TABLE subscriptions (
    id                   text PRIMARY KEY,
    user_id              uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    customer_id          text NOT NULL,
    status               text NOT NULL,
    price_id             text,
    current_period_end   timestamptz,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    -- `created` of the newest subscription event applied: an older one arriving late is
    -- ignored (out-of-order delivery).
    state_as_of          timestamptz NOT NULL,
    last_invoice_status  text,
    last_invoice_as_of   timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_user_id_idx ON subscriptions (user_id);
CREATE TRIGGER set_updated_at BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One-time payments completed through Checkout.
CREATE TABLE payments (
    checkout_session_id text PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount_total        bigint,
    currency            text,
    payment_status      text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
