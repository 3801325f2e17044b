//! The duration histogram of route metrics: log-linear buckets, as HDR histograms
//! have them.
//!
//! Durations are counted in microseconds. Below 64 µs each microsecond has its own
//! bucket. Above, each power of two (octave) `[2^e, 2^(e+1))` is cut into 32 equal
//! buckets, each `2^(e-5)` wide. A bucket's middle is then within `2^(e-6)` of any
//! value in it, and every value in it is at least `2^e`: reporting the middle is off
//! by at most 1/64 (1.6%) of the true value, so a percentile read from the buckets is
//! within 2% of the exact one. The last octave starts at 2^36 µs (19 hours); longer
//! durations count in its last bucket. That makes [`BUCKETS`] (1,056) buckets, and a
//! route's minute a few dozen of them in practice, which is what is stored.
//!
//! The hdrhistogram crate does the same, but its smallest layout within 2% (two
//! significant figures) has three times the buckets, and every request thread keeps
//! two per route.

use std::time::Duration;

/// Durations below this many microseconds have a bucket each.
const LINEAR: u64 = 64;
/// Buckets per octave, as a power of two.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// The first octave cut into sub-buckets: `[2^6, 2^7)`.
const FIRST_EXP: u32 = 6;
/// The last octave: `[2^36, 2^37)` µs.
const LAST_EXP: u32 = 36;

/// How many buckets a histogram has.
pub(crate) const BUCKETS: usize = (LINEAR + (LAST_EXP - FIRST_EXP + 1) as u64 * SUB) as usize;

/// The bucket of a duration of `micros` microseconds.
#[inline]
pub(crate) fn bucket(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let exp = (63 - micros.leading_zeros()).min(LAST_EXP);
    if exp == LAST_EXP && micros >= 1 << (LAST_EXP + 1) {
        return BUCKETS - 1;
    }
    let sub = (micros >> (exp - SUB_BITS)) - SUB;
    (LINEAR + u64::from(exp - FIRST_EXP) * SUB + sub) as usize
}

/// The smallest duration, in microseconds, that counts in `bucket`, and the bucket's
/// width.
fn bounds(bucket: usize) -> (u64, u64) {
    let bucket = bucket as u64;
    if bucket < LINEAR {
        return (bucket, 1);
    }
    let k = bucket - LINEAR;
    let exp = (k / SUB) as u32 + FIRST_EXP;
    let width = 1 << (exp - SUB_BITS);
    ((SUB + k % SUB) * width, width)
}

/// The duration a bucket stands for: its middle (its one value, below 64 µs).
fn representative(bucket: usize) -> u64 {
    let (low, width) = bounds(bucket);
    low + width / 2
}

/// Request durations counted into log-linear buckets (see the module docs): any
/// percentile read from it is within 2% of the exact value. Histograms of several
/// threads, minutes or routes merge by adding.
///
/// ```
/// use std::time::Duration;
/// use backstop_core::DurationHistogram;
///
/// let mut histogram = DurationHistogram::new();
/// for ms in 1..=100 {
///     histogram.record(Duration::from_millis(ms));
/// }
/// let p95 = histogram.percentile(95.0).as_secs_f64() * 1000.0;
/// assert!((p95 - 95.0).abs() <= 95.0 * 0.02);
/// let copy = DurationHistogram::from_bytes(&histogram.to_bytes()).unwrap();
/// assert_eq!(copy, histogram);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DurationHistogram {
    /// Counts per bucket, up to the highest bucket used.
    counts: Vec<u64>,
    total: u64,
}

impl std::fmt::Debug for DurationHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurationHistogram")
            .field("count", &self.total)
            .field("p50", &self.percentile(50.0))
            .field("p99", &self.percentile(99.0))
            .finish()
    }
}

/// Bytes that are not a histogram [`DurationHistogram::to_bytes`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an encoded duration histogram")]
pub struct InvalidHistogram;

impl DurationHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        DurationHistogram::default()
    }

    /// Counts one duration.
    pub fn record(&mut self, duration: Duration) {
        self.add_micros(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX), 1);
    }

    /// Counts `n` durations of `micros` microseconds.
    pub(crate) fn add_micros(&mut self, micros: u64, n: u64) {
        self.add_bucket(bucket(micros), n);
    }

    fn add_bucket(&mut self, bucket: usize, n: u64) {
        if n == 0 {
            return;
        }
        if self.counts.len() <= bucket {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += n;
        self.total += n;
    }

    /// Adds counts per bucket (a request thread's), `counts[i]` for bucket `i`.
    pub(crate) fn add_counts(&mut self, counts: &[u32]) {
        for (bucket, &n) in counts.iter().enumerate() {
            if n > 0 {
                self.add_bucket(bucket, u64::from(n));
            }
        }
    }

    /// Adds every duration of `other`.
    pub fn merge(&mut self, other: &DurationHistogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// How many durations it holds.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The `p`-th percentile (0 to 100) by nearest rank: the duration with at least
    /// `p`% of them at or below it, within 2%. Zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0 * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_micros(representative(bucket));
            }
        }
        Duration::from_micros(representative(self.counts.len().saturating_sub(1)))
    }

    /// How many durations are at most `limit` (to within a bucket: a bucket counts
    /// when its middle is): what Apdex needs.
    pub fn count_at_most(&self, limit: Duration) -> u64 {
        let limit = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
        self.counts
            .iter()
            .enumerate()
            .take_while(|(bucket, _)| representative(*bucket) <= limit)
            .map(|(_, n)| n)
            .sum()
    }

    /// The buckets in use: each one's smallest duration and count, shortest first.
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(bucket, &n)| (Duration::from_micros(bounds(bucket).0), n))
    }

    /// A compact encoding: for each bucket in use, the gap from the previous one and
    /// its count, as LEB128 varints. A typical route's minute takes well under 100
    /// bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        let mut previous = 0usize;
        for (bucket, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            put_varint(&mut out, (bucket - previous) as u64);
            put_varint(&mut out, n);
            previous = bucket;
        }
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote.
    pub fn from_bytes(mut bytes: &[u8]) -> Result<Self, InvalidHistogram> {
        let mut histogram = DurationHistogram::new();
        let mut bucket = 0usize;
        while !bytes.is_empty() {
            let gap = take_varint(&mut bytes)?;
            let n = take_varint(&mut bytes)?;
            bucket = usize::try_from(gap)
                .ok()
                .and_then(|gap| bucket.checked_add(gap))
                .filter(|b| *b < BUCKETS)
                .ok_or(InvalidHistogram)?;
            histogram.add_bucket(bucket, n);
        }
        Ok(histogram)
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Result<u64, InvalidHistogram> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(InvalidHistogram)?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(InvalidHistogram)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_the_bucket_whose_bounds_hold_it() {
        let mut values: Vec<u64> = (0..5000).collect();
        values.extend((0..60).map(|e| 1u64 << e));
        values.extend((0..60).map(|e| (1u64 << e) + 12_345));
        values.extend([u64::MAX, 1 << 37, (1 << 37) - 1]);
        for v in values {
            let b = bucket(v);
            assert!(b < BUCKETS, "{v}");
            let (low, width) = bounds(b);
            if v < 1 << (LAST_EXP + 1) {
                assert!(
                    low <= v && v < low + width,
                    "{v} in bucket {b} [{low}, +{width})"
                );
                let error = representative(b).abs_diff(v) as f64 / v.max(1) as f64;
                assert!(error <= 1.0 / 64.0, "{v}: {error}");
            } else {
                assert_eq!(b, BUCKETS - 1);
            }
        }
        assert_eq!(bucket(63), 63);
        assert_eq!(bucket(64), 64);
        assert_eq!(bounds(BUCKETS - 1).0 + bounds(BUCKETS - 1).1, 1 << 37);
    }

    #[test]
    fn bytes_that_are_not_a_histogram_are_an_error() {
        assert_eq!(
            DurationHistogram::from_bytes(&[]),
            Ok(DurationHistogram::new())
        );
        assert!(
            DurationHistogram::from_bytes(&[0x80]).is_err(),
            "cut varint"
        );
        assert!(
            DurationHistogram::from_bytes(&[5]).is_err(),
            "gap without count"
        );
        assert!(
            DurationHistogram::from_bytes(&[0xff, 0x7f, 1]).is_err(),
            "past the last bucket"
        );
        assert!(
            DurationHistogram::from_bytes(&[0xff; 12]).is_err(),
            "over 64 bits"
        );
    }

    #[test]
    fn percentiles_of_many_known_durations_are_within_two_percent() {
        let mut exact: Vec<u64> = Vec::new();
        let mut histogram = DurationHistogram::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // From 10 µs to about 10 s, log-uniform.
            let v = (10.0 * 1e6f64.powf((x % 1_000_000) as f64 / 1e6)) as u64;
            exact.push(v);
            histogram.add_micros(v, 1);
        }
        exact.sort_unstable();
        for p in [50.0, 95.0, 99.0, 99.9] {
            let k = ((p / 100.0 * exact.len() as f64).ceil() as usize).max(1);
            let want = exact[k - 1] as f64;
            let got = histogram.percentile(p).as_micros() as f64;
            assert!((got - want).abs() / want <= 0.02, "p{p}: {got} vs {want}");
        }
    }
}
