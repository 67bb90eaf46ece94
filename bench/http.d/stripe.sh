# Payments' benchmark, sourced by bench/http.sh against its running server (the template's
# stripe option removes this file with the feature): signed Stripe webhook deliveries to the
# hooks role, by bench-webhooks (crates/labs_bench).
for run in $(seq "$runs"); do
  "$target_dir/release/bench-webhooks" --url "http://127.0.0.1:$port/hooks/stripe" --connections 32 --seconds 10 | sed "s/^/webhooks run $run: /"
done
