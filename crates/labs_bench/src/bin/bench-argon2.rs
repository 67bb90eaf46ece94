//! The raw argon2id rate of this machine with the login's parameters: what `POST
//! /api/auth/token` is compared with (bench/http.sh, docs/PERFORMANCE.md). One hash per thread
//! at a time, on `--threads` threads, for `--seconds`.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use clap::Parser;
use labs_auth::PasswordHasher;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = labs_auth::password::DEFAULT_MEMORY_KIB)]
    memory_kib: u32,
    #[arg(long, default_value_t = labs_auth::password::DEFAULT_ITERATIONS)]
    iterations: u32,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let hasher = PasswordHasher::new(cli.memory_kib, cli.iterations, 1)?;
    let stored = hasher.hash("correct horse battery staple")?;
    // One verification alone: the latency of a single login's hash on an idle machine.
    let single = {
        let started = Instant::now();
        let _ = hasher.verify("correct horse battery staple", Some(&stored));
        started.elapsed()
    };
    let deadline = Instant::now() + Duration::from_secs(cli.seconds);
    let started = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cli.threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = 0;
                    while Instant::now() < deadline {
                        let _ = hasher.verify("correct horse battery staple", Some(&stored));
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).collect()
    });
    let total: u64 = counts.iter().sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "threads={} hashes={total} hashes_per_s={rate:.1} single_hash_ms={:.1}",
        cli.threads,
        single.as_secs_f64() * 1000.0
    );
    Ok(())
}
