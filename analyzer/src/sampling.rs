//! What a sampled snapshot stands for. libtrace.so's byte-clock sampler
//! (`MEMTRACE_SAMPLE`, the header's `sample_rate` R) records about one
//! allocation per R bytes; each recorded group of blocks is scaled by the
//! inverse of the probability that a block of its size was recorded.

/// The probability that the byte-clock sampler (one sample per `rate` bytes
/// on average, Poisson intervals) records a block of `size` bytes:
/// p(s) = 1 − exp(−s/R), computed as −expm1(−s/R).
pub fn sample_probability(size: u64, rate: u64) -> f64 {
    if rate == 0 {
        return 1.0;
    }
    -(-(size as f64) / rate as f64).exp_m1()
}

/// The unbiased estimate of what `count` sampled blocks of `size` bytes
/// stand for: (bytes s·c/p(s), blocks c/p(s)). A 0-byte block, which the
/// byte clock can never pick, counts as recorded (p = 1).
pub fn estimate(size: u64, count: u64, rate: u64) -> (f64, f64) {
    let p = sample_probability(size, rate);
    let p = if p > 0.0 { p } else { 1.0 };
    let c = count as f64 / p;
    (size as f64 * c, c)
}

/// The estimate for `count` sampled blocks of `bytes` bytes in all whose
/// (mean) size is `size`: when `bytes` is `size × count` (blocks of one
/// size, a live group) exactly [`estimate`]; otherwise (a stack's totals,
/// whose blocks' sizes the file does not keep) each block is taken to have
/// been sampled with the probability of the mean size,
/// (bytes/p(size), count/p(size)).
pub fn estimate_sum(size: u64, count: u64, bytes: u64, rate: u64) -> (f64, f64) {
    if bytes == size.saturating_mul(count) {
        return estimate(size, count, rate);
    }
    let p = sample_probability(size, rate);
    let p = if p > 0.0 { p } else { 1.0 };
    (bytes as f64 / p, count as f64 / p)
}

/// Rounds an estimate to an integer (saturating).
pub fn round_estimate(v: f64) -> u64 {
    v.round() as u64
}

/// Total size and block count of `(size, count, bytes)` groups (see
/// [`estimate_sum`]): exact sums (saturating) when `rate` is 0, else the
/// rounded sums of the estimates.
pub fn totals_of(groups: impl Iterator<Item = (u64, u64, u64)>, rate: u64) -> (u64, u64) {
    if rate > 0 {
        let (s, c) = groups.fold((0f64, 0f64), |(s, c), (size, count, bytes)| {
            let (es, ec) = estimate_sum(size, count, bytes, rate);
            (s + es, c + ec)
        });
        return (round_estimate(s), round_estimate(c));
    }
    groups.fold((0u64, 0u64), |(s, c), (_, count, bytes)| {
        (s.saturating_add(bytes), c.saturating_add(count))
    })
}

/// Total size and block count of `(size, count)` groups: exact sums
/// (saturating) when `rate` is 0, else the rounded sums of the estimates.
pub fn totals(groups: impl Iterator<Item = (u64, u64)>, rate: u64) -> (u64, u64) {
    if rate > 0 {
        let (s, c) = groups.fold((0f64, 0f64), |(s, c), (size, count)| {
            let (es, ec) = estimate(size, count, rate);
            (s + es, c + ec)
        });
        return (round_estimate(s), round_estimate(c));
    }
    groups.fold((0u64, 0u64), |(s, c), (size, count)| {
        (
            s.saturating_add(size.saturating_mul(count)),
            c.saturating_add(count),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_estimated_totals() {
        let g = [(100u64, 3u64), (0, 2), (u64::MAX, 2)];
        assert_eq!(totals(g.iter().copied(), 0), (u64::MAX, 7));
        assert_eq!(totals([(4096u64, 1u64)].iter().copied(), 0), (4096, 1));
        // one 4 KiB block sampled at R = 4 KiB stands for 1/(1 - e^-1) blocks
        let (s, c) = totals([(4096u64, 1u64)].iter().copied(), 4096);
        assert_eq!(c, round_estimate(1.0 / (1.0 - (-1f64).exp())));
        assert_eq!(s, round_estimate(4096.0 / (1.0 - (-1f64).exp())));
        assert_eq!(estimate(0, 5, 4096), (0.0, 5.0));
    }

    #[test]
    fn sums_of_mixed_sizes() {
        // blocks of one size: exactly the per-block estimate
        assert_eq!(estimate_sum(100, 3, 300, 4096), estimate(100, 3, 4096));
        // 1 block of 100 and 1 of 300: mean 200, p(200)
        let p = 1.0 - (-200f64 / 4096.0).exp();
        let (b, c) = estimate_sum(200, 2, 400, 4096);
        assert!((b - 400.0 / p).abs() < 1e-9 && (c - 2.0 / p).abs() < 1e-9);
        assert_eq!(estimate_sum(200, 2, 401, 0), (401.0, 2.0));
        assert_eq!(
            totals_of([(200u64, 2u64, 401u64), (7, 1, 7)].iter().copied(), 0),
            (408, 3)
        );
    }
}
