//! Summaries of latency samples, printed the one way the script parses.

use std::time::Duration;

/// Nearest-rank percentile of sorted samples, in milliseconds.
pub fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    ms(sorted[rank.min(sorted.len()) - 1])
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints `PREFIX_p50_ms`, `_p95_ms`, `_p99_ms`, `_mean_ms`, `_min_ms`, `_max_ms`.
pub fn report(prefix: &str, samples: &mut [Duration]) {
    samples.sort();
    let mean = if samples.is_empty() {
        f64::NAN
    } else {
        samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64
    };
    println!("{prefix}_samples: {}", samples.len());
    println!("{prefix}_p50_ms: {:.3}", pct(samples, 50.0));
    println!("{prefix}_p95_ms: {:.3}", pct(samples, 95.0));
    println!("{prefix}_p99_ms: {:.3}", pct(samples, 99.0));
    println!("{prefix}_mean_ms: {mean:.3}");
    println!("{prefix}_min_ms: {:.3}", pct(samples, 0.0));
    println!("{prefix}_max_ms: {:.3}", pct(samples, 100.0));
}
