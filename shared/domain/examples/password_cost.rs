//! The CPU cost of one login's password check (argon2id verify with the production
//! parameters), measured in-process: `cargo run --release -p shared --example password_cost`.

use domain::passwords::Passwords;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let passwords = Passwords::new()?;
    let hash = passwords.hash("correct horse battery staple").await?;
    // `password_cost [RUNS]`: 40 by default; `make test` runs the benchmarks with a few.
    let runs: usize = std::env::args().nth(1).map_or(Ok(40), |r| r.parse())?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs + 3 {
        let started = Instant::now();
        let ok = passwords.verify("correct horse battery staple", Some(&hash)).await;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(ok);
    }
    let mut samples = samples.split_off(3);
    samples.sort_by(f64::total_cmp);
    let median = samples[runs / 2];
    let p95 = samples[(runs * 95).div_ceil(100) - 1];
    println!(
        "argon2id verify (m=19 MiB, t=2, p=1): {runs} runs: median {median:.1} ms, p95 {p95:.1} ms"
    );
    Ok(())
}
