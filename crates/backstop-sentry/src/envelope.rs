//! Sentry's envelope format: one event or transaction per envelope (Sentry refuses
//! two), optionally with a client report, each item a JSON payload within
//! [`MAX_ITEM_BYTES`].

use std::io::Write;
use std::time::SystemTime;

use backstop_core::Record;
use serde_json::{Map, Value, json};

/// The largest item payload sent; bigger ones are trimmed (see [`trim`]).
pub const MAX_ITEM_BYTES: usize = 1024 * 1024;

/// What an item is: decides its envelope item type and its rate-limit category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An error or message event (item type `event`, category `error`).
    Event,
    /// A transaction (item type and category `transaction`).
    Transaction,
}

impl Kind {
    /// The envelope item type, also the outbox's name for it.
    pub fn item_type(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Transaction => "transaction",
        }
    }

    /// The rate-limit and client-report category.
    pub fn category(self) -> Category {
        match self {
            Kind::Event => Category::Error,
            Kind::Transaction => Category::Transaction,
        }
    }

    pub(crate) fn from_item_type(name: &str) -> Option<Kind> {
        match name {
            "event" => Some(Kind::Event),
            "transaction" => Some(Kind::Transaction),
            _ => None,
        }
    }
}

/// A data category, as rate limits and client reports name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Error and message events.
    Error,
    /// Transactions.
    Transaction,
    /// The spans of transactions.
    Span,
}

impl Category {
    /// Sentry's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Error => "error",
            Category::Transaction => "transaction",
            Category::Span => "span",
        }
    }
}

/// A record serialised for sending.
#[derive(Debug, Clone)]
pub struct Item {
    /// Event or transaction.
    pub kind: Kind,
    /// Its event id (32 hex digits).
    pub event_id: String,
    /// The spans it carries (a transaction's, after trimming).
    pub spans: u64,
    /// The JSON payload, within [`MAX_ITEM_BYTES`].
    pub payload: Vec<u8>,
}

/// Why a record could not become an item.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// It did not serialise.
    #[error("cannot serialise the record: {0}")]
    Json(#[from] serde_json::Error),
    /// Even trimmed, it is over the limit.
    #[error("the record is {0} bytes even after trimming, over the {MAX_ITEM_BYTES}-byte limit")]
    TooLarge(usize),
}

impl Item {
    /// Serialises a record, trimming it to fit [`MAX_ITEM_BYTES`].
    pub fn from_record(record: &Record) -> Result<Item, ItemError> {
        let (kind, event_id, spans, payload) = match record {
            Record::Event(event) => (
                Kind::Event,
                event.event_id.to_string(),
                0,
                serde_json::to_vec(event)?,
            ),
            Record::Transaction(t) => (
                Kind::Transaction,
                t.event_id.to_string(),
                t.spans.len() as u64,
                serde_json::to_vec(t)?,
            ),
        };
        if payload.len() <= MAX_ITEM_BYTES {
            return Ok(Item {
                kind,
                event_id,
                spans,
                payload,
            });
        }
        Item::from_payload(kind, event_id, payload)
    }

    /// An item from JSON already serialised (a stored record), trimmed to fit.
    pub fn from_payload(kind: Kind, event_id: String, payload: Vec<u8>) -> Result<Item, ItemError> {
        let (payload, spans) = if payload.len() <= MAX_ITEM_BYTES {
            let spans = match kind {
                Kind::Transaction => count_spans(&payload)?,
                Kind::Event => 0,
            };
            (payload, spans)
        } else {
            let mut value: Value = serde_json::from_slice(&payload)?;
            trim(&mut value, MAX_ITEM_BYTES)?;
            let spans = span_count(&value);
            (serde_json::to_vec(&value)?, spans)
        };
        if payload.len() > MAX_ITEM_BYTES {
            return Err(ItemError::TooLarge(payload.len()));
        }
        Ok(Item {
            kind,
            event_id,
            spans,
            payload,
        })
    }
}

fn count_spans(payload: &[u8]) -> Result<u64, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Spans {
        #[serde(default)]
        spans: Vec<serde::de::IgnoredAny>,
    }
    Ok(serde_json::from_slice::<Spans>(payload)?.spans.len() as u64)
}

fn span_count(value: &Value) -> u64 {
    value
        .get("spans")
        .and_then(Value::as_array)
        .map_or(0, |s| s.len() as u64)
}

fn size(value: &Value) -> Result<usize, serde_json::Error> {
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value)?;
    Ok(counter.0)
}

struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Trims a payload to `limit` bytes, always in the same order: the breadcrumbs, then
/// the spans past the limit (the first ones are kept), then the request's body, then
/// the rest of the request. What was removed is recorded under `_meta`, as Sentry's
/// own trimming does: `{"_meta": {"spans": {"": {"len": 2400, "rem": [["!limit", "x"]]}}}}`.
pub fn trim(value: &mut Value, limit: usize) -> Result<(), ItemError> {
    if size(value)? <= limit {
        return Ok(());
    }
    let Some(object) = value.as_object_mut() else {
        return Ok(());
    };
    // Breadcrumbs: all of them.
    if let Some(crumbs) = object.remove("breadcrumbs") {
        let len = crumbs
            .get("values")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        meta(object, &["breadcrumbs"], len, "x");
        if size_of(object)? <= limit {
            return Ok(());
        }
    }
    // Spans past the limit: keep the longest prefix that fits.
    if let Some(Value::Array(spans)) = object.get_mut("spans") {
        let original = spans.len();
        let taken = std::mem::take(spans);
        let mut without = size_of(object)?;
        // Room for the `_meta` entry this adds.
        without += 96;
        let mut kept = Vec::new();
        for span in taken {
            let s = size(&span)? + 1;
            if without + s > limit {
                break;
            }
            without += s;
            kept.push(span);
        }
        let dropped = original - kept.len();
        if let Some(Value::Array(spans)) = object.get_mut("spans") {
            *spans = kept;
        }
        if dropped > 0 {
            meta(object, &["spans"], original, "x");
        }
        if size_of(object)? <= limit {
            return Ok(());
        }
    }
    // The request's body, then the whole request.
    if let Some(request) = object.get_mut("request").and_then(Value::as_object_mut)
        && request.remove("data").is_some()
    {
        meta(object, &["request", "data"], 0, "x");
        if size_of(object)? <= limit {
            return Ok(());
        }
    }
    if object.remove("request").is_some() {
        meta(object, &["request"], 0, "x");
    }
    Ok(())
}

fn size_of(object: &Map<String, Value>) -> Result<usize, serde_json::Error> {
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, object)?;
    Ok(counter.0)
}

/// Records a removal at `path` in the payload's `_meta` tree.
fn meta(object: &mut Map<String, Value>, path: &[&str], len: usize, rule: &str) {
    let mut node = object
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    for key in path {
        let Some(map) = node.as_object_mut() else {
            return;
        };
        node = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(map) = node.as_object_mut() {
        let mut entry = json!({ "rem": [["!limit", rule]] });
        if len > 0 {
            entry["len"] = json!(len);
        }
        map.insert(String::new(), entry);
    }
}

/// Identifies the sender in envelope headers and in `X-Sentry-Auth`.
pub(crate) const SDK_NAME: &str = "backstop";
pub(crate) const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Writes an envelope: its header (`event_id`, `sent_at`, `sdk`), then each item with
/// its header. `item` is the event or transaction, `report` a client report payload.
pub fn write(
    item: Option<(Kind, &str, &[u8])>,
    report: Option<&[u8]>,
    sent_at: SystemTime,
) -> Vec<u8> {
    let len = item.map_or(0, |(_, _, p)| p.len()) + report.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(len + 256);
    let mut header = json!({
        "sent_at": humantime::format_rfc3339_millis(sent_at).to_string(),
        "sdk": { "name": SDK_NAME, "version": SDK_VERSION },
    });
    if let Some((_, event_id, _)) = item {
        header["event_id"] = json!(event_id);
    }
    // Serialising a `Value` of strings cannot fail.
    let _ = serde_json::to_writer(&mut out, &header);
    out.push(b'\n');
    let mut push = |ty: &str, payload: &[u8]| {
        let _ = serde_json::to_writer(
            &mut out,
            &json!({ "type": ty, "length": payload.len(), "content_type": "application/json" }),
        );
        out.push(b'\n');
        out.extend_from_slice(payload);
        out.push(b'\n');
    };
    if let Some((kind, _, payload)) = item {
        push(kind.item_type(), payload);
    }
    if let Some(report) = report {
        push("client_report", report);
    }
    out
}

/// Gzip-compresses a body.
pub(crate) fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transaction(spans: usize, crumbs: usize, body: usize) -> Value {
        json!({
            "type": "transaction",
            "event_id": "0123456789abcdef0123456789abcdef",
            "breadcrumbs": { "values": (0..crumbs).map(|i| json!({"message": format!("crumb {i} {}", "x".repeat(100))})).collect::<Vec<_>>() },
            "spans": (0..spans).map(|i| json!({"span_id": format!("{i:016x}"), "op": "db.sql.query", "description": "SELECT * FROM users WHERE id = ?".to_string() + &" ".repeat(200)})).collect::<Vec<_>>(),
            "request": { "url": "http://x/users", "data": "b".repeat(body) },
        })
    }

    #[test]
    fn trimming_takes_breadcrumbs_first_and_records_it() {
        let mut value = transaction(10, 5000, 10);
        trim(&mut value, 200_000).unwrap();
        assert!(value.get("breadcrumbs").is_none());
        assert_eq!(value["_meta"]["breadcrumbs"][""]["len"], 5000);
        assert_eq!(
            value["spans"].as_array().unwrap().len(),
            10,
            "spans untouched"
        );
        assert!(value["request"]["data"].is_string(), "request untouched");
    }

    #[test]
    fn then_spans_past_the_limit_then_the_request_body() {
        let mut value = transaction(10_000, 10, 10);
        trim(&mut value, 500_000).unwrap();
        let kept = value["spans"].as_array().unwrap();
        assert!(
            kept.len() < 10_000 && kept.len() > 1000,
            "kept {}",
            kept.len()
        );
        assert_eq!(
            kept[0]["span_id"],
            format!("{:016x}", 0),
            "the first ones stay"
        );
        assert_eq!(value["_meta"]["spans"][""]["len"], 10_000);
        assert!(serde_json::to_vec(&value).unwrap().len() <= 500_000);
        assert!(value["request"]["data"].is_string());

        let mut value = transaction(10, 10, 2_000_000);
        trim(&mut value, MAX_ITEM_BYTES).unwrap();
        assert!(value["request"].get("data").is_none());
        assert!(value["_meta"]["request"]["data"][""]["rem"].is_array());
        assert_eq!(value["request"]["url"], "http://x/users");
        assert!(serde_json::to_vec(&value).unwrap().len() <= MAX_ITEM_BYTES);
    }

    #[test]
    fn trimming_is_deterministic() {
        let (mut a, mut b) = (
            transaction(8000, 300, 300_000),
            transaction(8000, 300, 300_000),
        );
        trim(&mut a, 700_000).unwrap();
        trim(&mut b, 700_000).unwrap();
        assert_eq!(a, b);
    }
}
