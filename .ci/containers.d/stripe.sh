# Payments' part of the container checks, sourced by .ci/containers.sh (the template's stripe
# option removes this file with the feature): the stack needs a webhook secret, and a Stripe
# delivery goes through nginx to the hooks service.
LABS_STRIPE_WEBHOOK_SECRETS="whsec_$(openssl rand -hex 24)"
export LABS_STRIPE_WEBHOOK_SECRETS

# A webhook delivery through nginx to the hooks service: signed (HMAC-SHA256 of "t.body", as
# Stripe signs) it is taken, unsigned it is a 400 problem.
check_stripe_webhooks() {
  local event t v1 hook unsigned
  event='{"id":"evt_ci_1","object":"event","type":"ping.ci","created":1700000000,"livemode":false,"data":{"object":{}}}'
  t=$(date +%s)
  v1=$(printf '%s.%s' "$t" "$event" | openssl dgst -sha256 -hmac "$LABS_STRIPE_WEBHOOK_SECRETS" -hex | sed 's/^.* //')
  hook=$(curl -s -w ' %{http_code}' -H 'content-type: application/json' -H "stripe-signature: t=$t,v1=$v1" \
    --data-binary "$event" "http://127.0.0.1:$stack_port/hooks/stripe")
  [ "$hook" = '{"received":true,"duplicate":false} 200' ] || { echo "signed webhook through nginx: $hook" >&2; exit 1; }
  unsigned=$(curl -s -o /dev/null -w '%{http_code}' --data-binary "$event" "http://127.0.0.1:$stack_port/hooks/stripe")
  [ "$unsigned" = 400 ] || { echo "unsigned webhook through nginx answered $unsigned" >&2; exit 1; }
  log "webhooks through nginx: a signed delivery is taken by the hooks service, an unsigned one is a 400"
}
stack_checks+=(check_stripe_webhooks)
