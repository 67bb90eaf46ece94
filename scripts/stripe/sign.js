// Prints a Stripe-Signature header for a payload, made by Stripe's own SDK.
// Usage: node sign.js <secret> <unix timestamp> < payload
const Stripe = require('stripe');
const stripe = new Stripe('sk_test_unused');
const [secret, timestamp] = process.argv.slice(2);
let payload = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { payload += chunk; });
process.stdin.on('end', () => {
  process.stdout.write(stripe.webhooks.generateTestHeaderString({
    payload,
    secret,
    timestamp: Number(timestamp),
  }));
});
