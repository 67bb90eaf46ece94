# Payments' part of the fuzzing, sourced by scripts/fuzz-api.sh (the template's stripe option
# removes this file with the feature). The billing endpoints call Stripe: point them at a local
# stand-in of its three endpoints (scripts/fake-stripe.py), stopped with the fuzzed server.
stripe_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 scripts/fake-stripe.py "$stripe_port" &
processes+=("$!")
settings+=(LABS_STRIPE_SECRET_KEY=sk_test_fuzz LABS_STRIPE_API_BASE="http://127.0.0.1:$stripe_port"
  LABS_STRIPE_PRICE_SUBSCRIPTION=price_fuzz_monthly LABS_STRIPE_PRICE_ONE_TIME=price_fuzz_once)
