//! The `tracing` layer: turns what happens inside a request into its spans and
//! breadcrumbs.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! tracing_subscriber::registry()
//!     .with(backstop_core::tracing::layer())
//!     .init();
//! ```
//!
//! Inside a request (a bound [`RequestScope`]):
//!
//! - spans (`#[instrument]`ed functions and the like, at `INFO` and above by default)
//!   become `function` spans of the request, nested as they ran, with their fields;
//! - sqlx's per-query events (target `sqlx::query`) become `db.sql.query` spans, with
//!   the statement, rows affected and returned, and a start derived from the elapsed
//!   time;
//! - spans with a `db.system` field (sea-orm 2's `tracing-spans`, OpenTelemetry-style
//!   instrumentation) become `db` spans, their `db.statement` the query;
//! - spans with a `cache.key` field become `cache.get` or `cache.put` spans, with a
//!   breadcrumb each (see [`cache`](crate::cache) for the field names);
//! - events at `ERROR` are captured as error events with the request's context, and
//!   events at `INFO` and `WARN` become breadcrumbs ([`Config`] changes both levels).
//!
//! Spans are only recorded for sampled requests; breadcrumbs and error events for all
//! of them. Outside a request the layer records nothing and costs a thread-local read
//! per event.
//!
//! A span entered while no request is current (say, in a task spawned with
//! `.instrument(span)`) still reports to the request it was created in.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::tracing::field::{Field, Visit};
use ::tracing::span::{Attributes, Id, Record};
use ::tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{Filtered, LevelFilter};
use tracing_subscriber::layer::{self, Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::performance::spans::{MAX_FIELD, MAX_STATEMENT};
use crate::protocol::{Breadcrumb, SpanId, SpanStatus};
use crate::scope::RequestScope;
use crate::scope::intern::{Text, bounded};
use crate::scope::spans::{
    CacheCall, CacheOp, Detail, FieldValue, Instant, Query, Recorded, Statement,
};

/// The target sqlx logs its statements under.
const SQLX_TARGET: &str = "sqlx::query";

/// The field that makes a span a query, for route metrics (which count queries of
/// every request, sampled or not, without reading fields).
const QUERY_FIELD: &str = "db.statement";

/// The layer with its default [`Config`]: spans at `INFO` and above, breadcrumbs from
/// `INFO` and `WARN` events, error events from `ERROR` events, and every sqlx query.
pub fn layer<S>() -> TracingLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    Config::new().layer()
}

/// The layer as a `tracing-subscriber` layer, with its own filter: it only sees what it
/// records, and never hides anything from other layers.
pub type TracingLayer<S> = Filtered<SpanLayer, Interest, S>;

/// What the layer turns into spans, breadcrumbs and events.
///
/// ```
/// use tracing::Level;
/// use tracing_subscriber::prelude::*;
///
/// let layer = backstop_core::tracing::Config::new()
///     .spans(Level::DEBUG)        // also record DEBUG spans
///     .breadcrumbs(Level::DEBUG)  // and DEBUG events as breadcrumbs
///     .sqlx_system("postgresql")  // the database sqlx talks to
///     .layer();
/// let _subscriber = tracing_subscriber::registry().with(layer);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    spans: LevelFilter,
    breadcrumbs: LevelFilter,
    events: LevelFilter,
    sqlx: bool,
    sqlx_system: Option<&'static str>,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    /// The defaults: spans at `INFO` and above, `INFO`/`WARN` events as breadcrumbs,
    /// `ERROR` events captured, sqlx queries recorded.
    pub fn new() -> Self {
        Config {
            spans: LevelFilter::INFO,
            breadcrumbs: LevelFilter::INFO,
            events: LevelFilter::ERROR,
            sqlx: true,
            sqlx_system: None,
        }
    }

    /// Records spans at this level and above (more severe) as function spans.
    pub fn spans(mut self, level: impl Into<LevelFilter>) -> Self {
        self.spans = level.into();
        self
    }

    /// Turns events at this level and above into breadcrumbs (`OFF` for none).
    pub fn breadcrumbs(mut self, level: impl Into<LevelFilter>) -> Self {
        self.breadcrumbs = level.into();
        self
    }

    /// Captures events at this level and above as error events (`OFF` for none).
    /// Events at this level are not breadcrumbs too.
    pub fn events(mut self, level: impl Into<LevelFilter>) -> Self {
        self.events = level.into();
        self
    }

    /// Records sqlx's statements as query spans (default on).
    pub fn sqlx(mut self, enabled: bool) -> Self {
        self.sqlx = enabled;
        self
    }

    /// The database sqlx talks to (`postgresql`, `mysql`, `sqlite`), for the spans'
    /// `db.system` and the SQL dialect used to normalise them. sqlx's events don't say.
    pub fn sqlx_system(mut self, system: &'static str) -> Self {
        self.sqlx_system = Some(system);
        self
    }

    /// Builds the layer.
    pub fn layer<S>(self) -> TracingLayer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let interest = Interest {
            spans: self.spans,
            events: self.breadcrumbs.max(self.events),
            sqlx: self.sqlx,
        };
        SpanLayer { config: self }.with_filter(interest)
    }
}

/// Which spans and events the layer looks at; decided once per callsite.
#[derive(Debug, Clone)]
pub struct Interest {
    spans: LevelFilter,
    events: LevelFilter,
    sqlx: bool,
}

impl Interest {
    fn wants(&self, meta: &Metadata<'_>) -> bool {
        if is_own(meta.target()) {
            return false;
        }
        if meta.is_span() {
            return *meta.level() <= self.spans;
        }
        if meta.target() == SQLX_TARGET {
            return self.sqlx;
        }
        *meta.level() <= self.events
    }
}

impl<S> Filter<S> for Interest {
    fn enabled(&self, meta: &Metadata<'_>, _: &layer::Context<'_, S>) -> bool {
        self.wants(meta)
    }

    fn callsite_enabled(
        &self,
        meta: &'static Metadata<'static>,
    ) -> ::tracing::subscriber::Interest {
        if self.wants(meta) {
            ::tracing::subscriber::Interest::always()
        } else {
            ::tracing::subscriber::Interest::never()
        }
    }
}

/// Backstop's own logs (a failing sink, a panicking callback) are not the app's.
fn is_own(target: &str) -> bool {
    const OWN: [&str; 6] = [
        "backstop",
        "backstop_core",
        "backstop_tower",
        "backstop_actix",
        "backstop_store",
        "backstop_pages",
    ];
    OWN.iter().any(|own| {
        target
            .strip_prefix(own)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The layer itself; see [`layer()`] and [`Config`].
#[derive(Debug, Clone)]
pub struct SpanLayer {
    config: Config,
}

// ---------------------------------------------------------------------------------------
// Which request, which parent

/// A recorded span entered on this thread.
struct Entered {
    id: Id,
    span_id: SpanId,
    scope: Arc<RequestScope>,
}

thread_local! {
    /// The recorded spans entered on this thread, innermost last.
    static ENTERED: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
}

/// The request work on this thread belongs to, and the span it runs under (`None` for
/// the request's root span).
pub(crate) fn current() -> Option<(Arc<RequestScope>, Option<SpanId>)> {
    let bound = RequestScope::current();
    ENTERED.with(|entered| {
        let entered = entered.try_borrow().ok()?;
        let top = entered.last();
        match (bound, top) {
            (Some(scope), Some(top)) if Arc::ptr_eq(&scope, &top.scope) => {
                Some((scope, Some(top.span_id)))
            }
            (Some(scope), _) => Some((scope, None)),
            (None, Some(top)) => Some((top.scope.clone(), Some(top.span_id))),
            (None, None) => None,
        }
    })
}

/// What the layer keeps in a recorded span's extensions.
struct SpanData {
    scope: Arc<RequestScope>,
    /// Whether the request is sampled: a cache span of a request that is not is only
    /// followed for its breadcrumb.
    sampled: bool,
    span_id: SpanId,
    parent: Option<SpanId>,
    start: Instant,
    status: Option<SpanStatus>,
    query: Option<Query>,
    fields: Vec<(&'static str, FieldValue)>,
}

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let explicit_parent = attrs.parent().and_then(|parent| {
            let span = ctx.span(parent)?;
            let ext = span.extensions();
            let data = ext.get::<SpanData>()?;
            Some((data.scope.clone(), Some(data.span_id)))
        });
        let found = if attrs.is_root() {
            RequestScope::current().map(|scope| (scope, None))
        } else if attrs.is_contextual() {
            current()
        } else {
            explicit_parent
        };
        let Some((scope, parent)) = found else { return };
        if attrs.metadata().fields().field(QUERY_FIELD).is_some() {
            scope.count_query();
        }
        let sampled = scope.is_sampled();
        if !sampled && attrs.metadata().fields().field(CACHE_KEY).is_none() {
            return;
        }
        let mut data = SpanData {
            scope,
            sampled,
            span_id: SpanId::new(),
            parent,
            start: crate::scope::spans::now(),
            status: None,
            query: None,
            fields: Vec::new(),
        };
        attrs.record(&mut SpanVisitor(&mut data));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(data);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(data) = span.extensions_mut().get_mut::<SpanData>()
        {
            values.record(&mut SpanVisitor(data));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        let Some(data) = ext.get::<SpanData>() else {
            return;
        };
        let entered = Entered {
            id: id.clone(),
            span_id: data.span_id,
            scope: data.scope.clone(),
        };
        drop(ext);
        ENTERED.with(|stack| {
            if let Ok(mut stack) = stack.try_borrow_mut() {
                stack.push(entered);
            }
        });
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        ENTERED.with(|stack| {
            let Ok(mut stack) = stack.try_borrow_mut() else {
                return;
            };
            // Spans usually exit innermost first; search from the top for the rest.
            if let Some(at) = stack.iter().rposition(|e| e.id == *id) {
                stack.remove(at);
            }
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        let meta = span.metadata();
        let SpanData {
            scope,
            sampled,
            span_id,
            parent,
            start,
            status,
            query,
            mut fields,
        } = data;
        if let Some(call) = cache_call(&mut fields) {
            let took_ns = nanos_since(start);
            crate::performance::cache::record(&scope, parent, start, took_ns, call);
            return;
        }
        if !sampled {
            return;
        }
        scope.record_span(Recorded {
            span_id,
            parent,
            start,
            took_ns: nanos_since(start),
            status,
            detail: Detail::Traced {
                code: meta,
                fields,
                query: query.map(Box::new),
            },
        });
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let Some((scope, parent)) = current() else {
            return;
        };
        if meta.target() == SQLX_TARGET {
            scope.count_query();
            if scope.is_sampled() {
                self.record_sqlx(&scope, parent, event);
            }
            return;
        }
        let level = *meta.level();
        if level <= self.config.events {
            let mut visitor = EventVisitor::default();
            event.record(&mut visitor);
            let mut captured = match visitor.error {
                Some(error) => error,
                None => crate::capture::error::message_event(String::new(), crate::Level::Error),
            };
            captured.level = level_of(level);
            captured.logger = Some(meta.target().to_owned());
            if let Some(message) = visitor.message {
                captured.message = Some(message);
            }
            if !visitor.data.is_empty() {
                captured
                    .contexts
                    .insert("tracing".into(), serde_json::Value::Object(visitor.data));
            }
            scope.capture_event(captured);
        } else if level <= self.config.breadcrumbs {
            let mut visitor = EventVisitor::default();
            event.record(&mut visitor);
            let mut crumb = Breadcrumb::default().level(level_of(level));
            crumb.ty = "log".into();
            crumb.category = Some(meta.target().to_owned());
            crumb.message = visitor.message;
            crumb.data = visitor.data;
            scope.configure(|s| s.add_breadcrumb(crumb));
        }
    }
}

impl SpanLayer {
    fn record_sqlx(&self, scope: &RequestScope, parent: Option<SpanId>, event: &Event<'_>) {
        let end = crate::scope::spans::now();
        let mut visitor = SqlxVisitor::default();
        event.record(&mut visitor);
        let Some(text) = visitor.statement else {
            return;
        };
        let elapsed = Duration::try_from_secs_f64(visitor.elapsed_secs).unwrap_or_default();
        let start = end.checked_sub(elapsed).unwrap_or(end);
        let status =
            (*event.metadata().level() == Level::ERROR).then_some(SpanStatus::InternalError);
        let statement = Statement {
            text,
            system: self.config.sqlx_system,
            rows_affected: visitor.rows_affected,
            rows_returned: visitor.rows_returned,
        };
        let took_ns = end.saturating_duration_since(start).as_nanos() as u64;
        let detail = Detail::Statement(statement);
        scope.record_span(Recorded::with_new_id(
            parent, start, took_ns, status, detail,
        ));
    }
}

/// The field that makes a span a cache operation.
const CACHE_KEY: &str = "cache.key";

/// A cache operation, when the span's fields describe one (see
/// [`crate::cache`]).
fn cache_call(fields: &mut Vec<(&'static str, FieldValue)>) -> Option<CacheCall> {
    let at = fields.iter().position(|(name, _)| *name == CACHE_KEY)?;
    let key = match fields.swap_remove(at).1 {
        FieldValue::Str(key) => key,
        FieldValue::I64(v) => v.to_string(),
        FieldValue::U64(v) => v.to_string(),
        FieldValue::F64(v) => v.to_string(),
        FieldValue::Bool(v) => v.to_string(),
    };
    let key = crate::performance::cache::key_text(&key);
    let mut call = CacheCall {
        op: CacheOp::Get,
        key,
        hit: None,
        item_size: None,
    };
    for (name, value) in fields.drain(..) {
        match (name, value) {
            ("cache.hit", FieldValue::Bool(hit)) => call.hit = Some(hit),
            ("cache.item_size", FieldValue::U64(size)) => call.item_size = Some(size),
            ("cache.item_size", FieldValue::I64(size)) => call.item_size = u64::try_from(size).ok(),
            ("cache.op", FieldValue::Str(op)) if op == "put" || op == "cache.put" => {
                call.op = CacheOp::Put;
            }
            _ => {}
        }
    }
    Some(call)
}

/// Nanoseconds since `start`, saturating (585 years).
pub(crate) fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn level_of(level: Level) -> crate::Level {
    match level {
        Level::ERROR => crate::Level::Error,
        Level::WARN => crate::Level::Warning,
        Level::INFO => crate::Level::Info,
        _ => crate::Level::Debug,
    }
}

// ---------------------------------------------------------------------------------------
// Visitors

/// Reads a sqlx query event. sqlx puts the first four words in `summary` and the whole
/// statement in `db.statement`, which it leaves empty when the two are the same.
#[derive(Default)]
struct SqlxVisitor {
    statement: Option<Text>,
    has_statement: bool,
    rows_affected: Option<u64>,
    rows_returned: Option<u64>,
    elapsed_secs: f64,
}

impl Visit for SqlxVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "db.statement" => {
                let value = value.trim();
                if !value.is_empty() {
                    self.statement = Some(Text::new(value, MAX_STATEMENT));
                    self.has_statement = true;
                }
            }
            "summary" if !self.has_statement && !value.is_empty() => {
                self.statement = Some(Text::new(value, MAX_STATEMENT));
            }
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "rows_affected" => self.rows_affected = Some(value),
            "rows_returned" => self.rows_returned = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(value) = u64::try_from(value) {
            self.record_u64(field, value);
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" && value.is_finite() && value >= 0.0 {
            self.elapsed_secs = value;
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

/// Reads a span's fields: `db.*` fields make it a query, the rest are kept as data.
struct SpanVisitor<'a>(&'a mut SpanData);

impl SpanVisitor<'_> {
    fn field(&mut self, field: &Field, value: FieldValue) {
        let name = field.name();
        match (name, value) {
            ("db.system", FieldValue::Str(system)) => {
                self.0.query.get_or_insert_with(Query::default).system = Some(system.into());
            }
            ("otel.status_code", FieldValue::Str(code)) => {
                self.0.status = match code.as_str() {
                    "ERROR" | "Error" | "error" => Some(SpanStatus::InternalError),
                    "OK" | "Ok" | "ok" => Some(SpanStatus::Ok),
                    _ => self.0.status,
                };
            }
            (name, value) => {
                if let Some(slot) = self.0.fields.iter_mut().find(|(k, _)| *k == name) {
                    slot.1 = value;
                } else {
                    self.0.fields.push((name, value));
                }
            }
        }
    }
}

impl Visit for SpanVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "db.statement" {
            let statement = Text::new(value, MAX_STATEMENT);
            self.0.query.get_or_insert_with(Query::default).statement = statement;
            return;
        }
        self.field(field, FieldValue::Str(bounded(value, MAX_FIELD)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, FieldValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, FieldValue::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, FieldValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, FieldValue::Bool(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "db.statement" {
            return self.record_str(field, &text);
        }
        let text = if text.len() > MAX_FIELD {
            bounded(&text, MAX_FIELD)
        } else {
            text
        };
        self.field(field, FieldValue::Str(text));
    }
}

/// Reads an event: its message, an error it carries, and the other fields as data.
#[derive(Default)]
struct EventVisitor {
    message: Option<String>,
    error: Option<crate::Event>,
    data: crate::protocol::Map,
}

impl Visit for EventVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        let value = bounded(value, MAX_STATEMENT);
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.data.insert(field.name().into(), value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.data.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.data.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.data.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.data.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.error.is_none() {
            self.error = Some(crate::capture::error::error_event(value));
        }
        self.data
            .insert(field.name().into(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = format!("{value:?}");
        if text.len() > MAX_STATEMENT {
            text = bounded(&text, MAX_STATEMENT);
        }
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.data.insert(field.name().into(), text.into());
        }
    }
}
