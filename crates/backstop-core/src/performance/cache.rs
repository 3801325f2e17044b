//! Cache operations as `cache.get` and `cache.put` spans, and their hit rates.
//!
//! ```
//! # let backstop = backstop_core::init(backstop_core::Options::new()).unwrap();
//! use std::collections::HashMap;
//!
//! let mut cache: HashMap<String, String> = HashMap::new();
//! let key = "rates:EUR";
//! let mut get = backstop_core::cache::get(key);
//! let found = cache.get(key).cloned();
//! get.hit(found.is_some());
//! drop(get);
//! if found.is_none() {
//!     let value = "1.08".to_owned();
//!     let mut put = backstop_core::cache::put(key);
//!     put.item_size(value.len() as u64);
//!     cache.insert(key.to_owned(), value);
//! }
//! ```
//!
//! Inside a sampled request each operation is a span described by its key (cut to
//! [`MAX_KEY`] bytes, scrubbed on the worker: with PII off, the segment after one that
//! names a secret, `session:…`, and the values of `token=…` pairs, become
//! `[Filtered]`), with `cache.key`, `cache.hit` and `cache.item_size` in its data.
//! Every operation inside a request, sampled or not, leaves a breadcrumb (key and hit).
//!
//! The [`tracing`](crate::tracing) layer treats a span with a `cache.key` field the same
//! way, so a team's own `#[instrument]`ed cache wrapper is picked up: its op is
//! `cache.put` when a `cache.op` field says `put` (or `cache.put`), else `cache.get`,
//! and `cache.hit` / `cache.item_size` may be recorded on it later.
//!
//! For each transaction the worker counts the `cache.get` hits and misses per key
//! prefix (the key up to its first `:` or `/`) into its `cache` context, which the
//! store and dashboard show per route.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::performance::spans::{Guard, GuardRecord, Open};
use crate::protocol::{Span, SpanId};
use crate::scope::RequestScope;
use crate::scope::intern::Text;
use crate::scope::spans::{CacheCall, CacheOp, CrumbRecord, Detail, Instant, Recorded};

/// The longest key a span keeps, in bytes; longer ones are cut and marked with `…`.
pub const MAX_KEY: usize = 128;

/// Starts a `cache.get` span for `key`. Call [`CacheSpan::hit`] with the outcome.
pub fn get(key: &str) -> CacheSpan {
    CacheSpan::start(CacheOp::Get, key)
}

/// Starts a `cache.put` span for `key`.
pub fn put(key: &str) -> CacheSpan {
    CacheSpan::start(CacheOp::Put, key)
}

impl GuardRecord for CacheCall {
    const NAME: &'static str = "CacheSpan";

    fn end(open: Open<Self>, took_ns: u64) {
        record(&open.scope, open.parent, open.start, took_ns, open.record);
    }
}

/// A cache operation in progress; see [`get`] and [`put`].
#[must_use = "the span ends when the guard drops"]
pub struct CacheSpan(Guard<CacheCall>);

impl CacheSpan {
    fn start(op: CacheOp, key: &str) -> Self {
        let open = crate::performance::tracing::current().map(|(scope, parent)| Open {
            scope,
            parent,
            start: crate::scope::spans::now(),
            record: CacheCall {
                op,
                key: key_text(key),
                hit: None,
                item_size: None,
            },
        });
        CacheSpan(Guard::new(open))
    }

    /// Whether the operation is inside a request.
    pub fn is_recording(&self) -> bool {
        self.0.is_recording()
    }

    /// Whether the key was found.
    pub fn hit(&mut self, hit: bool) -> &mut Self {
        self.0.set(|call| call.hit = Some(hit));
        self
    }

    /// The item's size in bytes.
    pub fn item_size(&mut self, bytes: u64) -> &mut Self {
        self.0.set(|call| call.item_size = Some(bytes));
        self
    }

    /// Ends the span now (the same as dropping it).
    pub fn finish(self) {}
}

impl fmt::Debug for CacheSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Leaves the operation's breadcrumb and, in a sampled request, its span, under one
/// lock. Both get the compact record (its key shared); the breadcrumb is built from it
/// only if something reads it.
pub(crate) fn record(
    scope: &RequestScope,
    parent: Option<SpanId>,
    start: Instant,
    took_ns: u64,
    call: CacheCall,
) {
    let span = scope.is_sampled().then(|| {
        let detail = Detail::Cache(call.clone());
        Recorded::with_new_id(parent, start, took_ns, None, detail)
    });
    let ended = start + Duration::from_nanos(took_ns);
    scope.record_with_breadcrumb(ended, CrumbRecord::Cache(call), span);
}

/// A key as a span keeps it: cut to [`MAX_KEY`] bytes, and shared when it repeats.
pub(crate) fn key_text(key: &str) -> Text {
    if key.len() > MAX_KEY {
        Text::Owned(crate::scope::intern::bounded(key, MAX_KEY))
    } else {
        Text::new(key, MAX_KEY)
    }
}

/// A key's prefix: up to its first `:` or `/` (the whole key when it has neither).
pub fn key_prefix(key: &str) -> &str {
    key.split([':', '/']).next().unwrap_or(key)
}

/// The `cache` context of a transaction: `cache.get` hits and misses per key prefix,
/// the prefixes in the order first seen. `None` when it made no `cache.get` with a
/// known outcome.
pub(crate) fn hit_rates(spans: &[Span]) -> Option<Value> {
    let mut prefixes: Vec<(&str, u64, u64)> = Vec::new();
    for span in spans {
        if span.op.as_deref() != Some("cache.get") {
            continue;
        }
        let Some(hit) = span.data.get("cache.hit").and_then(Value::as_bool) else {
            continue;
        };
        let key = span.description.as_deref().unwrap_or_default();
        let prefix = key_prefix(key);
        let at = match prefixes.iter().position(|(p, ..)| *p == prefix) {
            Some(at) => at,
            None => {
                prefixes.push((prefix, 0, 0));
                prefixes.len() - 1
            }
        };
        if hit {
            prefixes[at].1 += 1;
        } else {
            prefixes[at].2 += 1;
        }
    }
    if prefixes.is_empty() {
        return None;
    }
    let list: Vec<Value> = prefixes
        .into_iter()
        .map(|(prefix, hits, misses)| {
            serde_json::json!({
                "prefix": prefix,
                "hits": hits,
                "misses": misses,
                "hit_rate": hits as f64 / (hits + misses) as f64,
            })
        })
        .collect();
    Some(serde_json::json!({ "prefixes": list }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(key_prefix("rates:EUR"), "rates");
        assert_eq!(key_prefix("user/42/profile"), "user");
        assert_eq!(key_prefix("plain"), "plain");
        assert_eq!(key_prefix(""), "");
    }
}
