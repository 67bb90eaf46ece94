//! Webhook ingestion: signed Stripe-style events POSTed to `/hooks/stripe` by `--connections`
//! concurrent clients for `--seconds`, each event with its own id (so each is stored and
//! queued, the full path). Reports accepted events per second and latency percentiles.
//! See bench/http.sh and docs/PERFORMANCE.md.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "whsec_development_only")]
    secret: String,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn sign(secret: &str, payload: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signature = hmac::sign(&key, format!("{t}.{payload}").as_bytes());
    let hex: String = signature
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.connections)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(cli.seconds);
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let run = uuid::Uuid::now_v7().simple().to_string();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..cli.connections {
        let (client, url, secret, run) = (
            client.clone(),
            cli.url.clone(),
            cli.secret.clone(),
            run.clone(),
        );
        let (accepted, failed, latencies) = (accepted.clone(), failed.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut n = 0_u64;
            while Instant::now() < deadline {
                n += 1;
                let payload = format!(
                    r#"{{"id":"evt_bench_{run}_{connection}_{n}","object":"event","type":"invoice.paid","created":1700000000,"livemode":false,"data":{{"object":{{"id":"in_bench","object":"invoice"}}}}}}"#
                );
                let signature = sign(&secret, &payload);
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header("stripe-signature", signature)
                    .header("content-type", "application/json")
                    .body(payload)
                    .send()
                    .await;
                mine.push(sent.elapsed());
                match answer {
                    Ok(answer) if answer.status().is_success() => accepted.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
            latencies.lock().map(|mut all| all.extend(mine)).ok();
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = latencies.lock().map(|all| all.clone()).unwrap_or_default();
    all.sort_unstable();
    let percentile = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "accepted={} failed={} events_per_s={:.0} p50_ms={:.2} p99_ms={:.2}",
        accepted.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        accepted.load(Ordering::Relaxed) as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
    );
    Ok(())
}
