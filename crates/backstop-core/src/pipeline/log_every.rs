//! A recurring failure, logged at most once an interval.

use std::time::{Duration, Instant};

/// Rate-limits a recurring failure's log line: at most one per interval, saying how
/// many it held back since the last. Sinks use it so a dead disk or an outage logs
/// once a minute, not once a batch.
///
/// ```
/// use backstop_core::LogEvery;
///
/// let mut log = LogEvery::minute();
/// assert_eq!(log.due(), Some(0)); // the first failure is logged
/// assert_eq!(log.due(), None); // the next ones within the minute are counted
/// assert_eq!(log.due(), None);
/// ```
#[derive(Debug, Clone)]
pub struct LogEvery {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogEvery {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> LogEvery {
        LogEvery {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// At most one line a minute.
    pub const fn minute() -> LogEvery {
        LogEvery::new(Duration::from_secs(60))
    }

    /// Whether to log this occurrence: `Some(n)`, with `n` occurrences held back since
    /// the last line, or `None` (it is counted for the next line).
    pub fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}
