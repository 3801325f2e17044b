//! The event model: Sentry's own JSON shapes, so exporting is serialisation, not
//! translation.
//!
//! An error is an [`Event`]; a sampled request is a [`Transaction`] holding [`Span`]s.
//! Both serialize to the JSON that Sentry's ingestion accepts (and that the
//! `sentry-types` crate deserializes), and both deserialize back, so the store can
//! keep the JSON and hand the dashboard real types.
//!
//! ```
//! use backstop_core::protocol::{Event, Level};
//!
//! let mut event = Event::new(Level::Warning);
//! event.message = Some("disk almost full".into());
//! let json = serde_json::to_value(&event).unwrap();
//! assert_eq!(json["level"], "warning");
//! assert_eq!(json["message"], "disk almost full");
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A free-form JSON object, as used by `extra`, contexts and span data.
pub type Map = serde_json::Map<String, Value>;

// ---------------------------------------------------------------------------------------
// Identifiers

/// The id of one event or transaction: 128 random bits, written as 32 lowercase hex
/// digits (the form Sentry shows and the 500 page quotes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(u128);

impl EventId {
    /// A new random id (UUID v4 layout). Uses a thread-local generator: no syscall.
    pub fn new() -> Self {
        let raw = fastrand::u128(..);
        // Set the version (4) and variant (RFC 4122) bits, as a v4 UUID does.
        let raw = (raw & !(0xf << 76)) | (0x4 << 76);
        let raw = (raw & !(0x3 << 62)) | (0x2 << 62);
        EventId(raw)
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        uuid::Uuid::from_u128(self.0)
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = lower_hex::<32>(self.0);
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&digits).unwrap_or_default())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

impl FromStr for EventId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(|u| EventId(u.as_u128()))
    }
}

/// The last `N` lower-case hex digits of `value`, zero-padded: what the ids print as,
/// without the formatting machinery (the worker prints a few per transaction, an
/// outgoing call's trace headers take two on the request thread, and a new request id
/// is one).
pub(crate) fn lower_hex<const N: usize>(value: u128) -> [u8; N] {
    const { assert!(N <= 32) };
    let mut all = [0u8; 32];
    all[..16].copy_from_slice(&hex16((value >> 64) as u64));
    all[16..].copy_from_slice(&hex16(value as u64));
    let mut out = [0u8; N];
    out.copy_from_slice(&all[32 - N..]);
    out
}

/// The 16 lower-case hex digits of `value`, eight at a time in a `u64`.
fn hex16(value: u64) -> [u8; 16] {
    /// The eight nibbles of `x`, one per byte, most significant first.
    fn spread(x: u32) -> u64 {
        let x = u64::from(x);
        let x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
        let x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
        (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F
    }
    /// Each byte's nibble as its digit: `'0' + n`, plus 39 more for `a` to `f`.
    fn digits(nibbles: u64) -> [u8; 8] {
        let letters = ((nibbles + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
        (nibbles + 0x3030_3030_3030_3030 + letters * 39).to_be_bytes()
    }
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&digits(spread((value >> 32) as u32)));
    out[8..].copy_from_slice(&digits(spread(value as u32)));
    out
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $bytes:literal, $int:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
        pub struct $name($int);

        impl $name {
            /// A new random, non-zero id.
            pub fn new() -> Self {
                // Drawing again on zero (once in 2^64 draws) is cheaper than drawing
                // from the range `1..`, which costs a 128-bit division.
                loop {
                    let id = fastrand::$int(..);
                    if id != 0 {
                        return $name(id);
                    }
                }
            }

            /// Whether this is the all-zero id, which W3C trace context treats as invalid.
            pub fn is_zero(&self) -> bool {
                self.0 == 0
            }

            /// The id's lowercase hex digits, as its `Display` writes them.
            pub(crate) fn hex(self) -> [u8; $bytes * 2] {
                lower_hex::<{ $bytes * 2 }>(u128::from(self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let digits = self.hex();
                // Hex digits are ASCII.
                f.write_str(std::str::from_utf8(&digits).unwrap_or_default())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                if s.len() != $bytes * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(InvalidId);
                }
                <$int>::from_str_radix(s, 16).map($name).map_err(|_| InvalidId)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// A W3C/Sentry trace id: 16 bytes, 32 hex digits.
    TraceId,
    16,
    u128
);
hex_id!(
    /// A span id: 8 bytes, 16 hex digits.
    SpanId,
    8,
    u64
);

/// A trace or span id that is not the right number of hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidId;

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a valid hex id")
    }
}

impl std::error::Error for InvalidId {}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------
// Timestamps

/// Serde helpers for the two timestamp forms Sentry uses.
pub(crate) mod ts {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn to_secs(t: &SystemTime) -> f64 {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    }

    struct AnyTimestamp;

    impl serde::de::Visitor<'_> for AnyTimestamp {
        type Value = SystemTime;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a unix timestamp in seconds or an RFC 3339 date")
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<SystemTime, E> {
            if !v.is_finite() || v < 0.0 {
                return Err(E::custom("timestamp out of range"));
            }
            Ok(UNIX_EPOCH + Duration::from_secs_f64(v))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SystemTime, E> {
            Ok(UNIX_EPOCH + Duration::from_secs(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SystemTime, E> {
            u64::try_from(v)
                .map(|v| UNIX_EPOCH + Duration::from_secs(v))
                .map_err(|_| E::custom("timestamp out of range"))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SystemTime, E> {
            humantime::parse_rfc3339_weak(v.trim_end_matches('Z'))
                .or_else(|_| humantime::parse_rfc3339(v))
                .map_err(E::custom)
        }
    }

    /// Seconds since the epoch, as a float (`1732460000.123`).
    pub(crate) mod float {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_f64(to_secs(t))
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
            d.deserialize_any(AnyTimestamp)
        }
    }

    /// RFC 3339 with microseconds (`2026-11-24T15:31:00.123456Z`): what Sentry's span
    /// and transaction `timestamp` fields are read as.
    pub(crate) mod rfc3339 {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&humantime::format_rfc3339_micros(*t))
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
            d.deserialize_any(AnyTimestamp)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Level

/// How severe an event or breadcrumb is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Detailed diagnostics.
    Debug,
    /// Informational.
    #[default]
    Info,
    /// Something unexpected that did not fail the request.
    Warning,
    /// A failure.
    Error,
    /// A failure that ends the process or the request abruptly (a panic).
    Fatal,
}

impl Level {
    /// The name Sentry uses (`"warning"`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = InvalidLevel;
    fn from_str(s: &str) -> Result<Self, InvalidLevel> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Level::Debug,
            "info" | "log" => Level::Info,
            "warning" | "warn" => Level::Warning,
            "error" => Level::Error,
            "fatal" | "critical" => Level::Fatal,
            _ => return Err(InvalidLevel),
        })
    }
}

/// A level name that is none of debug, info, warning, error, fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidLevel;

impl fmt::Display for InvalidLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected one of debug, info, warning, error, fatal")
    }
}

impl std::error::Error for InvalidLevel {}

// ---------------------------------------------------------------------------------------
// Exceptions and stack traces

/// One frame of a stack trace. Sentry orders frames from the outermost caller to the
/// frame that failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The function, without its module path (`handler::{{closure}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The module path (`demo::routes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The source file, as the compiler recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The absolute path of the source file, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<String>,
    /// The line number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u64>,
    /// The column number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colno: Option<u64>,
    /// Whether the frame is the application's own code rather than a library's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app: Option<bool>,
    /// The instruction address, as `0x...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction_addr: Option<String>,
}

/// A stack trace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stacktrace {
    /// The frames, outermost caller first.
    #[serde(default)]
    pub frames: Vec<Frame>,
}

/// How an exception was caught.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mechanism {
    /// `panic`, `error`, `http`, `capture` ...
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether user code handled the error (`false` for panics and unhandled 5xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled: Option<bool>,
    /// A short human description of the mechanism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Set on exceptions that were synthesised (a bare 5xx with no error object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<bool>,
    /// Free-form data about the mechanism.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map,
}

impl Mechanism {
    /// A mechanism of the given type and handled flag.
    pub fn new(ty: impl Into<String>, handled: bool) -> Self {
        Mechanism {
            ty: ty.into(),
            handled: Some(handled),
            description: None,
            synthetic: None,
            data: Map::new(),
        }
    }
}

/// One exception. A chain (`source()`) is several, the root cause first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    /// The type name (`ParseIntError`, `panic`).
    #[serde(rename = "type")]
    pub ty: String,
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The module the type lives in (`core::num::error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Where it was raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<Stacktrace>,
    /// How it was caught.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<Mechanism>,
}

/// Sentry wraps lists in `{"values": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Values<T> {
    /// The items.
    pub values: Vec<T>,
}

impl<T> Default for Values<T> {
    fn default() -> Self {
        Values { values: Vec::new() }
    }
}

impl<T> Values<T> {
    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

// ---------------------------------------------------------------------------------------
// Request, user, breadcrumbs

/// The HTTP request an event happened in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The full URL, query included (scrubbed like `query_string`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// A captured body (JSON or form), scrubbed. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The raw query string, scrubbed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_string: Option<String>,
    /// Cookies, collected only with `send_default_pii`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<String>,
    /// Headers, secret ones filtered. Repeated headers are joined with `, `.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Server environment: `REMOTE_ADDR`, `HTTP_VERSION`, `REQUEST_ID` ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// Who was affected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The application's id for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The email address; dropped unless `send_default_pii` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The client's IP address; dropped unless `send_default_pii` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// Anything else.
    #[serde(flatten)]
    pub other: Map,
}

impl User {
    /// A user with just an id.
    pub fn with_id(id: impl Into<String>) -> Self {
        User {
            id: Some(id.into()),
            ..User::default()
        }
    }

    /// Sets the username.
    #[must_use]
    pub fn username(mut self, name: impl Into<String>) -> Self {
        self.username = Some(name.into());
        self
    }

    /// Sets the email address.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }
}

/// Something that happened before the event: a click, a query, a log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breadcrumb {
    /// When it happened.
    #[serde(with = "ts::float", default = "SystemTime::now")]
    pub timestamp: SystemTime,
    /// `default`, `http`, `query`, `navigation`, `user` ...
    #[serde(rename = "type", default = "default_breadcrumb_type")]
    pub ty: String,
    /// A dotted category (`cart`, `db.query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Severity.
    #[serde(default)]
    pub level: Level,
    /// What happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Structured data.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map,
}

fn default_breadcrumb_type() -> String {
    "default".into()
}

impl Default for Breadcrumb {
    fn default() -> Self {
        Breadcrumb {
            timestamp: SystemTime::now(),
            ty: default_breadcrumb_type(),
            category: None,
            level: Level::Info,
            message: None,
            data: Map::new(),
        }
    }
}

impl Breadcrumb {
    /// A breadcrumb with a category and message, timestamped now.
    ///
    /// ```
    /// use backstop_core::protocol::Breadcrumb;
    /// let crumb = Breadcrumb::new("cart", "added item").data("product_id", 42);
    /// assert_eq!(crumb.data["product_id"], 42);
    /// ```
    pub fn new(category: impl Into<String>, message: impl Into<String>) -> Self {
        Breadcrumb {
            category: Some(category.into()),
            message: Some(message.into()),
            ..Breadcrumb::default()
        }
    }

    /// Sets the level.
    #[must_use]
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Sets the type (`http`, `query`, `user`...).
    #[must_use]
    pub fn ty(mut self, ty: impl Into<String>) -> Self {
        self.ty = ty.into();
        self
    }

    /// Adds one data field.
    #[must_use]
    pub fn data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }
}

// ---------------------------------------------------------------------------------------
// Events

/// An error or message event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id, quoted on the 500 page.
    pub event_id: EventId,
    /// When it happened.
    #[serde(with = "ts::float", default = "SystemTime::now")]
    pub timestamp: SystemTime,
    /// Severity.
    #[serde(default)]
    pub level: Level,
    /// Always `native` for Rust.
    #[serde(default = "default_platform")]
    pub platform: Cow<'static, str>,
    /// A plain message (for `capture_message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Which logger or tracing target produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// The exceptions, root cause first.
    #[serde(default, skip_serializing_if = "Values::is_empty")]
    pub exception: Values<Exception>,
    /// The route (`GET /users/{id}`) or task the event happened in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// Where the error came from: the top in-app frame, filled in by the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culprit: Option<String>,
    /// The grouping key parts. The worker resolves `{{ default }}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprint: Vec<String>,
    /// The release (`shop@1.4.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// `production`, `staging`, `development` ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// The HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// Indexed key/value pairs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Structured contexts (`trace`, `browser`, `os`, or the team's own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contexts: BTreeMap<String, Value>,
    /// Unindexed extra data.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map,
    /// What happened before, oldest first.
    #[serde(default, skip_serializing_if = "Values::is_empty")]
    pub breadcrumbs: Values<Breadcrumb>,
    /// Which SDK sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<SdkInfo>,
}

fn default_platform() -> Cow<'static, str> {
    Cow::Borrowed("native")
}

impl Event {
    /// An empty event with a fresh id, timestamped now.
    pub fn new(level: Level) -> Self {
        Event {
            event_id: EventId::new(),
            timestamp: SystemTime::now(),
            level,
            platform: default_platform(),
            message: None,
            logger: None,
            exception: Values::default(),
            transaction: None,
            culprit: None,
            fingerprint: Vec::new(),
            release: None,
            environment: None,
            server_name: None,
            user: None,
            request: None,
            tags: BTreeMap::new(),
            contexts: BTreeMap::new(),
            extra: Map::new(),
            breadcrumbs: Values::default(),
            sdk: None,
        }
    }

    /// The title an issue list shows: `Type: message` of the outermost exception, or the
    /// message.
    pub fn title(&self) -> String {
        match self.exception.values.last() {
            Some(exc) => match &exc.value {
                Some(value) => format!("{}: {}", exc.ty, value),
                None => exc.ty.clone(),
            },
            None => self
                .message
                .clone()
                .unwrap_or_else(|| "<no message>".to_owned()),
        }
    }

    /// The group this event belongs to: a stable hash of the resolved fingerprint.
    /// Events that share it are one issue.
    pub fn group_hash(&self) -> String {
        hash_parts(self.fingerprint.iter().map(String::as_str))
    }
}

/// A stable hex hash of the parts (xxh3, 128 bits). Stable across builds and
/// platforms, so issues keep their identity across releases.
pub fn hash_parts<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        hasher.update(part.as_bytes());
        // A separator that can't occur in text keeps ["ab","c"] apart from ["a","bc"].
        hasher.update(&[0xff]);
    }
    format!("{:032x}", hasher.digest128())
}

/// Which SDK produced a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdkInfo {
    /// `backstop.rust`.
    pub name: Cow<'static, str>,
    /// The crate version.
    pub version: Cow<'static, str>,
}

impl SdkInfo {
    pub(crate) fn backstop() -> Self {
        SdkInfo {
            name: Cow::Borrowed("backstop.rust"),
            version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Transactions and spans

/// How a span or transaction ended, in Sentry's (and OpenTelemetry's) vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum SpanStatus {
    Ok,
    DeadlineExceeded,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    ResourceExhausted,
    InvalidArgument,
    Unimplemented,
    Unavailable,
    InternalError,
    UnknownError,
    Cancelled,
    AlreadyExists,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    DataLoss,
}

impl SpanStatus {
    /// The status for an HTTP response code, as Sentry maps it.
    pub fn from_http(code: u16) -> SpanStatus {
        match code {
            100..=399 => SpanStatus::Ok,
            401 => SpanStatus::Unauthenticated,
            403 => SpanStatus::PermissionDenied,
            404 => SpanStatus::NotFound,
            409 => SpanStatus::AlreadyExists,
            413 => SpanStatus::FailedPrecondition,
            429 => SpanStatus::ResourceExhausted,
            499 => SpanStatus::Cancelled,
            400..=499 => SpanStatus::InvalidArgument,
            501 => SpanStatus::Unimplemented,
            503 => SpanStatus::Unavailable,
            504 => SpanStatus::DeadlineExceeded,
            500..=599 => SpanStatus::InternalError,
            _ => SpanStatus::UnknownError,
        }
    }

    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            SpanStatus::Ok => "ok",
            SpanStatus::DeadlineExceeded => "deadline_exceeded",
            SpanStatus::Unauthenticated => "unauthenticated",
            SpanStatus::PermissionDenied => "permission_denied",
            SpanStatus::NotFound => "not_found",
            SpanStatus::ResourceExhausted => "resource_exhausted",
            SpanStatus::InvalidArgument => "invalid_argument",
            SpanStatus::Unimplemented => "unimplemented",
            SpanStatus::Unavailable => "unavailable",
            SpanStatus::InternalError => "internal_error",
            SpanStatus::UnknownError => "unknown_error",
            SpanStatus::Cancelled => "cancelled",
            SpanStatus::AlreadyExists => "already_exists",
            SpanStatus::FailedPrecondition => "failed_precondition",
            SpanStatus::Aborted => "aborted",
            SpanStatus::OutOfRange => "out_of_range",
            SpanStatus::DataLoss => "data_loss",
        }
    }
}

/// A unit of work inside a transaction: a query, a function, an outgoing call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// This span.
    pub span_id: SpanId,
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// The span it ran under (the transaction's root span, or another span).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<SpanId>,
    /// What kind of work: `db.sql.query`, `function`, `http.client` ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// What exactly: the normalised SQL, the function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SpanStatus>,
    /// When it started.
    #[serde(with = "ts::float")]
    pub start_timestamp: SystemTime,
    /// When it ended.
    #[serde(with = "ts::rfc3339")]
    pub timestamp: SystemTime,
    /// Indexed key/value pairs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Structured data (`db.system`, `db.rows_affected`, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map,
}

impl Span {
    /// How long the span took.
    pub fn duration(&self) -> std::time::Duration {
        self.timestamp
            .duration_since(self.start_timestamp)
            .unwrap_or_default()
    }
}

/// What kind of performance problem a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// One query, then the same query again for each row it returned.
    NPlusOne,
    /// The same statement (same parameters where known, else the same SQL) repeated.
    DuplicateQueries,
    /// One query over the slow-query threshold.
    SlowQuery,
    /// More queries in one request than the threshold.
    TooManyQueries,
    /// The same outgoing call (one normalised URL) made again and again in a row.
    NPlusOneApiCalls,
    /// One outgoing HTTP call over the slow-call threshold.
    SlowHttpCall,
}

impl ProblemKind {
    /// The name used in fingerprints, the store and the dashboard (`n_plus_one`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::NPlusOne => "n_plus_one",
            ProblemKind::DuplicateQueries => "duplicate_queries",
            ProblemKind::SlowQuery => "slow_query",
            ProblemKind::TooManyQueries => "too_many_queries",
            ProblemKind::NPlusOneApiCalls => "n_plus_one_api_calls",
            ProblemKind::SlowHttpCall => "slow_http_call",
        }
    }

    /// A title for people (`N+1 query`).
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::NPlusOne => "N+1 query",
            ProblemKind::DuplicateQueries => "Duplicate queries",
            ProblemKind::SlowQuery => "Slow query",
            ProblemKind::TooManyQueries => "Too many queries",
            ProblemKind::NPlusOneApiCalls => "N+1 API calls",
            ProblemKind::SlowHttpCall => "Slow external call",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A performance problem found in one transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceProblem {
    /// What was found.
    pub kind: ProblemKind,
    /// Groups occurrences into one issue: a hash of the kind, the transaction name
    /// (route) and the query group.
    pub fingerprint: String,
    /// The normalised query at fault (`SELECT * FROM posts WHERE user_id = ?`); for
    /// too many queries, the most frequent one.
    pub description: String,
    /// The stable hash of the normalised query, when one query is at
    /// fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_group: Option<String>,
    /// The span the offending queries ran under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<SpanId>,
    /// The offending spans, in the order they started.
    pub span_ids: Vec<SpanId>,
    /// How many queries are involved.
    pub count: u32,
    /// Their total time, in milliseconds.
    pub duration_ms: f64,
}

impl PerformanceProblem {
    /// One line for people: `11 queries like `SELECT ...` took 64 ms`.
    pub fn summary(&self) -> String {
        let ms = self.duration_ms.round();
        match self.kind {
            ProblemKind::NPlusOne | ProblemKind::DuplicateQueries => format!(
                "{} queries like `{}` took {ms} ms",
                self.count, self.description
            ),
            ProblemKind::SlowQuery if self.count == 1 => {
                format!("`{}` took {ms} ms", self.description)
            }
            ProblemKind::SlowQuery => format!(
                "{} slow queries like `{}` took {ms} ms",
                self.count, self.description
            ),
            ProblemKind::TooManyQueries => {
                format!("{} queries in one request took {ms} ms", self.count)
            }
            ProblemKind::NPlusOneApiCalls => format!(
                "{} calls to `{}` in a row took {ms} ms",
                self.count, self.description
            ),
            ProblemKind::SlowHttpCall if self.count == 1 => {
                format!("call to `{}` took {ms} ms", self.description)
            }
            ProblemKind::SlowHttpCall => format!(
                "{} slow calls to `{}` took {ms} ms",
                self.count, self.description
            ),
        }
    }
}

/// The `trace` context of a transaction: its root span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: TraceId,
    /// The transaction's root span.
    pub span_id: SpanId,
    /// The caller's span, when the trace was continued from an incoming header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<SpanId>,
    /// `http.server`, `task` ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Cow<'static, str>>,
    /// How the transaction ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SpanStatus>,
    /// Structured data (`http.response.status_code`, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map,
}

/// One sampled request (or task), with its spans.
///
/// On the wire (Sentry's JSON), [`trace`](Self::trace) is the `trace` entry of
/// `contexts`; here it is typed, and `contexts` holds the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// Unique id.
    pub event_id: EventId,
    /// Always `transaction`.
    pub ty: Cow<'static, str>,
    /// The name (`GET /users/{id}`).
    pub name: String,
    /// When it started.
    pub start_timestamp: SystemTime,
    /// When it ended.
    pub timestamp: SystemTime,
    /// Always `native`.
    pub platform: Cow<'static, str>,
    /// The root span: its trace, id, op, status and data.
    pub trace: TraceContext,
    /// The other contexts (browser, os, device, the team's own).
    pub contexts: BTreeMap<String, Value>,
    /// The child spans, in the order they finished.
    pub spans: Vec<Span>,
    /// The release.
    pub release: Option<String>,
    /// The environment.
    pub environment: Option<String>,
    /// The host.
    pub server_name: Option<String>,
    /// The user.
    pub user: Option<User>,
    /// The HTTP request.
    pub request: Option<Request>,
    /// Indexed key/value pairs.
    pub tags: BTreeMap<String, String>,
    /// Unindexed extra data (`spans_dropped` when the span limit was hit).
    pub extra: Map,
    /// Which SDK sent it.
    pub sdk: Option<SdkInfo>,
    /// Performance problems the worker's detectors found in this transaction (N+1,
    /// duplicate, slow and too many queries). Backstop's own field: Sentry ignores it.
    pub problems: Vec<PerformanceProblem>,
}

impl Transaction {
    /// How long the transaction took.
    pub fn duration(&self) -> std::time::Duration {
        self.timestamp
            .duration_since(self.start_timestamp)
            .unwrap_or_default()
    }

    /// The status the transaction ended with.
    pub fn status(&self) -> Option<SpanStatus> {
        self.trace.status
    }
}

/// A transaction as Sentry's JSON has it: borrowed to serialize, owned when
/// deserialized.
#[derive(Serialize, Deserialize)]
struct TransactionWire<'a> {
    event_id: EventId,
    #[serde(rename = "type", default = "transaction_type")]
    ty: Cow<'a, str>,
    #[serde(rename = "transaction")]
    name: Cow<'a, str>,
    #[serde(with = "ts::float")]
    start_timestamp: SystemTime,
    #[serde(with = "ts::rfc3339")]
    timestamp: SystemTime,
    #[serde(default = "default_platform")]
    platform: Cow<'a, str>,
    contexts: WireContexts<'a>,
    #[serde(default)]
    spans: Cow<'a, [Span]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_name: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<Cow<'a, User>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<Cow<'a, Request>>,
    #[serde(default, skip_serializing_if = "is_empty_tags")]
    tags: Cow<'a, BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    extra: Cow<'a, Map>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sdk: Option<Cow<'a, SdkInfo>>,
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    problems: Cow<'a, [PerformanceProblem]>,
}

fn transaction_type() -> Cow<'static, str> {
    Cow::Borrowed("transaction")
}

// serde hands `skip_serializing_if` a reference to the field, a `Cow` here.
#[allow(clippy::ptr_arg)]
fn is_empty_tags(tags: &Cow<'_, BTreeMap<String, String>>) -> bool {
    tags.is_empty()
}

#[allow(clippy::ptr_arg)]
fn is_empty_map(map: &Cow<'_, Map>) -> bool {
    map.is_empty()
}

/// `contexts` on the wire: `trace` first, then the others.
struct WireContexts<'a> {
    trace: Cow<'a, TraceContext>,
    others: Cow<'a, BTreeMap<String, Value>>,
}

impl Serialize for WireContexts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let others = self.others.iter().filter(|(name, _)| *name != "trace");
        let mut map = s.serialize_map(Some(1 + others.clone().count()))?;
        map.serialize_entry("trace", &*self.trace)?;
        for (name, value) in others {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for WireContexts<'_> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut others = BTreeMap::<String, Value>::deserialize(d)?;
        let trace = others
            .remove("trace")
            .ok_or_else(|| serde::de::Error::missing_field("trace"))?;
        let trace = TraceContext::deserialize(trace).map_err(serde::de::Error::custom)?;
        Ok(WireContexts {
            trace: Cow::Owned(trace),
            others: Cow::Owned(others),
        })
    }
}

impl Serialize for Transaction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TransactionWire {
            event_id: self.event_id,
            ty: Cow::Borrowed(&self.ty),
            name: Cow::Borrowed(&self.name),
            start_timestamp: self.start_timestamp,
            timestamp: self.timestamp,
            platform: Cow::Borrowed(&self.platform),
            contexts: WireContexts {
                trace: Cow::Borrowed(&self.trace),
                others: Cow::Borrowed(&self.contexts),
            },
            spans: Cow::Borrowed(&self.spans),
            release: self.release.as_deref().map(Cow::Borrowed),
            environment: self.environment.as_deref().map(Cow::Borrowed),
            server_name: self.server_name.as_deref().map(Cow::Borrowed),
            user: self.user.as_ref().map(Cow::Borrowed),
            request: self.request.as_ref().map(Cow::Borrowed),
            tags: Cow::Borrowed(&self.tags),
            extra: Cow::Borrowed(&self.extra),
            sdk: self.sdk.as_ref().map(Cow::Borrowed),
            problems: Cow::Borrowed(&self.problems),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Transaction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = TransactionWire::deserialize(d)?;
        Ok(Transaction {
            event_id: wire.event_id,
            ty: Cow::Owned(wire.ty.into_owned()),
            name: wire.name.into_owned(),
            start_timestamp: wire.start_timestamp,
            timestamp: wire.timestamp,
            platform: Cow::Owned(wire.platform.into_owned()),
            trace: wire.contexts.trace.into_owned(),
            contexts: wire.contexts.others.into_owned(),
            spans: wire.spans.into_owned(),
            release: wire.release.map(Cow::into_owned),
            environment: wire.environment.map(Cow::into_owned),
            server_name: wire.server_name.map(Cow::into_owned),
            user: wire.user.map(Cow::into_owned),
            request: wire.request.map(Cow::into_owned),
            tags: wire.tags.into_owned(),
            extra: wire.extra.into_owned(),
            sdk: wire.sdk.map(Cow::into_owned),
            problems: wire.problems.into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_sends_its_root_span_as_the_trace_context_and_reads_back() {
        let mut data = Map::new();
        data.insert("http.response.status_code".into(), 404.into());
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let transaction = Transaction {
            event_id: EventId::new(),
            ty: Cow::Borrowed("transaction"),
            name: "GET /users/{id}".into(),
            start_timestamp: start,
            timestamp: start + std::time::Duration::from_millis(5),
            platform: Cow::Borrowed("native"),
            trace: TraceContext {
                trace_id: TraceId::new(),
                span_id: SpanId::new(),
                parent_span_id: Some(SpanId::new()),
                op: Some(Cow::Borrowed("http.server")),
                status: Some(SpanStatus::NotFound),
                data,
            },
            contexts: BTreeMap::from([(
                "browser".to_owned(),
                serde_json::json!({"name": "Firefox"}),
            )]),
            spans: Vec::new(),
            release: Some("shop@1.2.3".into()),
            environment: None,
            server_name: None,
            user: None,
            request: None,
            tags: BTreeMap::new(),
            extra: Map::new(),
            sdk: Some(SdkInfo::backstop()),
            problems: Vec::new(),
        };
        let json = serde_json::to_value(&transaction).unwrap();
        let trace = &json["contexts"]["trace"];
        assert_eq!(trace["trace_id"], transaction.trace.trace_id.to_string());
        assert_eq!(trace["span_id"], transaction.trace.span_id.to_string());
        assert_eq!(trace["op"], "http.server");
        assert_eq!(trace["status"], "not_found");
        assert_eq!(trace["data"]["http.response.status_code"], 404);
        assert_eq!(json["contexts"]["browser"]["name"], "Firefox");
        assert_eq!(json["type"], "transaction");
        assert_eq!(json["transaction"], "GET /users/{id}");
        assert_eq!(json["sdk"]["name"], "backstop.rust");
        assert!(json.get("environment").is_none(), "empty fields stay out");
        let back: Transaction = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, transaction);

        let mut no_trace = json;
        no_trace["contexts"]
            .as_object_mut()
            .unwrap()
            .remove("trace");
        let error = serde_json::from_value::<Transaction>(no_trace).unwrap_err();
        assert!(error.to_string().contains("trace"), "{error}");
    }

    #[test]
    fn hex_digits_are_the_formatters() {
        let mut values = vec![0, 1, 0x0a, 0xff, u128::MAX, u128::from(u64::MAX)];
        values.extend((0..1000).map(|_| fastrand::u128(..)));
        for value in values {
            assert_eq!(lower_hex::<32>(value), *format!("{value:032x}").as_bytes());
            let low = value as u64;
            assert_eq!(
                lower_hex::<16>(u128::from(low)),
                *format!("{low:016x}").as_bytes()
            );
        }
    }

    #[test]
    fn ids_print_as_zero_padded_lower_hex_and_parse_back() {
        for text in ["00000000000000ff", "0123456789abcdef", "ffffffffffffffff"] {
            assert_eq!(text.parse::<SpanId>().unwrap().to_string(), text);
        }
        for text in [
            "000000000000000000000000000000a1",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ] {
            assert_eq!(text.parse::<TraceId>().unwrap().to_string(), text);
        }
        let id = EventId::new();
        assert_eq!(id.to_string(), id.as_uuid().simple().to_string());
        assert_eq!(format!("{:?}", SpanId(0x2a)), "SpanId(000000000000002a)");
    }
}
