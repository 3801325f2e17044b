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
    let mut out = Vec::new();
    write_into(&mut out, item, report, sent_at);
    out
}

/// [`write`] into `out` (cleared first), so a sender reuses one buffer.
pub(crate) fn write_into(
    out: &mut Vec<u8>,
    item: Option<(Kind, &str, &[u8])>,
    report: Option<&[u8]>,
    sent_at: SystemTime,
) {
    out.clear();
    let len = item.map_or(0, |(_, _, p)| p.len()) + report.map_or(0, <[u8]>::len);
    out.reserve(len + 256);
    // The headers are written by hand: building a `Value` for each cost more than the
    // rest of the framing. Strings still go through serde_json for their escaping.
    out.extend_from_slice(b"{");
    if let Some((_, event_id, _)) = item {
        out.extend_from_slice(b"\"event_id\":");
        string(out, event_id);
        out.push(b',');
    }
    out.extend_from_slice(b"\"sent_at\":\"");
    // RFC 3339 is digits, `-`, `:`, `.`, `T` and `Z`: nothing to escape.
    let _ = write!(out, "{}", humantime::format_rfc3339_millis(sent_at));
    out.extend_from_slice(b"\",\"sdk\":{\"name\":");
    string(out, SDK_NAME);
    out.extend_from_slice(b",\"version\":");
    string(out, SDK_VERSION);
    out.extend_from_slice(b"}}\n");
    let mut push = |ty: &str, payload: &[u8]| {
        out.extend_from_slice(b"{\"type\":");
        string(out, ty);
        let _ = writeln!(
            out,
            ",\"length\":{},\"content_type\":\"application/json\"}}",
            payload.len()
        );
        out.extend_from_slice(payload);
        out.push(b'\n');
    };
    if let Some((kind, _, payload)) = item {
        push(kind.item_type(), payload);
    }
    if let Some(report) = report {
        push("client_report", report);
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A gzip compressor kept for many bodies. A new compressor allocates and zeroes some
/// 300 KB of tables; the profile of the sender showed that (and the page faults and
/// `madvise` calls of giving it back) as the largest single cost per envelope.
pub(crate) struct Gzip {
    deflate: flate2::Compress,
    used: bool,
}

impl Gzip {
    pub(crate) fn new() -> Gzip {
        Gzip {
            // Level 1: a fraction of the default level's time, and JSON still shrinks
            // to a quarter or so.
            deflate: flate2::Compress::new(flate2::Compression::fast(), false),
            used: false,
        }
    }

    /// Writes `body` gzip-compressed into `out` (cleared first); false if it could not
    /// be compressed and `out` holds it as it is.
    pub(crate) fn compress(&mut self, body: &[u8], out: &mut Vec<u8>) -> bool {
        if self.used {
            self.deflate.reset();
        }
        self.used = true;
        out.clear();
        out.reserve(body.len() / 2 + 64);
        // The gzip header: magic, deflate, no flags, no time, fastest, unknown OS.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
        let start = self.deflate.total_in();
        loop {
            let consumed = (self.deflate.total_in() - start) as usize;
            let status =
                self.deflate
                    .compress_vec(&body[consumed..], out, flate2::FlushCompress::Finish);
            match status {
                Ok(flate2::Status::StreamEnd) => break,
                Ok(_) => out.reserve(out.capacity().max(1024)),
                Err(_) => {
                    // Compressing into a Vec does not fail; should it, send it
                    // uncompressed rather than a broken body.
                    out.clear();
                    out.extend_from_slice(body);
                    return false;
                }
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(body);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        true
    }
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

    fn gunzip(body: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .expect("a valid gzip body");
        out
    }

    #[test]
    fn one_compressor_serves_many_bodies() {
        let mut gzip = Gzip::new();
        let mut out = Vec::new();
        let bodies: Vec<Vec<u8>> = vec![
            serde_json::to_vec(&transaction(10, 3, 10)).unwrap(),
            Vec::new(),
            b"{}".to_vec(),
            // Bigger than the first guess at the output's size, and incompressible.
            (0..300_000).map(|_| fastrand::u8(..)).collect(),
            serde_json::to_vec(&transaction(2000, 300, 5000)).unwrap(),
        ];
        for body in bodies.iter().chain(&bodies) {
            assert!(gzip.compress(body, &mut out));
            assert_eq!(&gunzip(&out), body);
        }
    }

    #[test]
    fn envelope_headers_are_json_lines() {
        let sent_at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let body = write(
            Some((
                Kind::Transaction,
                "0123456789abcdef0123456789abcdef",
                b"{\"a\":1}",
            )),
            Some(b"{\"b\":2}"),
            sent_at,
        );
        let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
        let header: Value = serde_json::from_slice(lines[0]).unwrap();
        assert_eq!(
            header,
            json!({
                "event_id": "0123456789abcdef0123456789abcdef",
                "sent_at": "2023-11-14T22:13:20.123Z",
                "sdk": { "name": SDK_NAME, "version": SDK_VERSION },
            })
        );
        let item: Value = serde_json::from_slice(lines[1]).unwrap();
        assert_eq!(
            item,
            json!({ "type": "transaction", "length": 7, "content_type": "application/json" })
        );
        assert_eq!(lines[2], b"{\"a\":1}");
        let report: Value = serde_json::from_slice(lines[3]).unwrap();
        assert_eq!(report["type"], "client_report");
        assert_eq!(lines[4], b"{\"b\":2}");
        assert_eq!(lines[5], b"", "ends with a newline");

        let alone: Value = serde_json::from_slice(
            write(None, Some(b"{}"), sent_at)
                .split(|b| *b == b'\n')
                .next()
                .unwrap(),
        )
        .unwrap();
        assert!(alone.get("event_id").is_none());
    }
}
