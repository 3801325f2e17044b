//! A sink that prints one line per event to stderr: what a service shows before it has
//! a store or an exporter, so nothing is lost silently.

use std::io::Write;

use crate::sink::{Record, Sink, SinkError};

/// Prints `backstop: [level] title — transaction (event id)` per event to stderr, a line
/// per performance problem (`backstop: [problem] N+1 query in GET /users: 20 queries
/// like ...`), and, when asked, a line per transaction.
#[derive(Debug, Default)]
pub struct ConsoleSink {
    transactions: bool,
}

impl ConsoleSink {
    /// Events only.
    pub fn new() -> Self {
        ConsoleSink::default()
    }

    /// Also prints a line per transaction (name, status, duration, span count).
    #[must_use]
    pub fn with_transactions(mut self, on: bool) -> Self {
        self.transactions = on;
        self
    }

    /// The line printed for a record, if any.
    pub fn line(&self, record: &Record) -> Option<String> {
        match record {
            Record::Event(event) => Some(format!(
                "backstop: [{}] {}{} (event {})",
                event.level,
                event.title(),
                event
                    .transaction
                    .as_deref()
                    .map(|t| format!(" in {t}"))
                    .unwrap_or_default(),
                event.event_id
            )),
            Record::Transaction(t) => {
                let mut lines: Vec<String> = t
                    .problems
                    .iter()
                    .map(|p| {
                        format!(
                            "backstop: [problem] {} in {}: {} (transaction {})",
                            p.kind.title(),
                            t.name,
                            p.summary(),
                            t.event_id
                        )
                    })
                    .collect();
                if self.transactions {
                    lines.insert(
                        0,
                        format!(
                            "backstop: {} {} in {:.1} ms, {} spans",
                            t.name,
                            t.status().map(|s| s.as_str()).unwrap_or("unknown"),
                            t.duration().as_secs_f64() * 1000.0,
                            t.spans.len()
                        ),
                    );
                }
                (!lines.is_empty()).then(|| lines.join("\n"))
            }
        }
    }
}

impl Sink for ConsoleSink {
    fn name(&self) -> &str {
        "console"
    }

    fn consume(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        let stderr = std::io::stderr();
        let mut out = stderr.lock();
        for record in batch {
            if let Some(line) = self.line(record) {
                writeln!(out, "{line}")?;
            }
        }
        Ok(())
    }
}
