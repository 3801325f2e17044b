//! Per-request context: the [`Scope`] data (user, tags, breadcrumbs...) inside a
//! [`RequestScope`] (which also carries the trace and collects spans), and how handler
//! code finds it without passing it around.
//!
//! The adapter creates one `RequestScope` per request and binds it to the request's
//! future: while that future is polled, the scope is the thread's *current* scope, so
//! `backstop::set_user`, `add_breadcrumb` and `capture_*` find it. Work the handler
//! spawns keeps the scope only when bound explicitly with [`bind`].
//!
//! ```
//! use backstop_core::{Client, Options, RequestScope};
//!
//! let backstop = backstop_core::init(Options::new().traces_sample_rate(1.0)).unwrap();
//! let scope = RequestScope::builder(&backstop, "GET /users/{id}").op("http.server").start();
//! scope.run(|| {
//!     backstop_core::set_tag("tenant", "acme");
//!     backstop_core::add_breadcrumb(backstop_core::Breadcrumb::new("auth", "signed in"));
//! });
//! scope.finish_http(200);
//! ```

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use serde_json::Value;

pub(crate) mod intern;
pub(crate) mod outlet;
pub(crate) mod pending;
pub(crate) mod spans;

use outlet::Outlet;
use pending::{PendingTransaction, ScopeContext, TraceLink, TxName};
use spans::{Clock, CrumbRecord, Instant, PendingSpan, Recorded};

use crate::capture::error::{error_event, message_event};
use crate::capture::trace::TraceParent;
use crate::http::RequestSource;
use crate::options::SamplingContext;
use crate::protocol::{
    Breadcrumb, Event, EventId, Level, Map, Request, Span, SpanId, SpanStatus, TraceId, User,
};

/// The context that events of one request carry: who, what, and what happened before.
///
/// Reached through [`configure_scope`](crate::configure_scope) or
/// [`RequestScope::configure`].
pub struct Scope {
    /// The client it reports to.
    client: Arc<dyn Outlet>,
    /// Boxed, as is `request`: most scopes never set them, and every request moves
    /// and allocates its scope.
    user: Option<Box<User>>,
    /// Tags, contexts, extra and fingerprint, in one box made on the first set: most
    /// scopes never set any.
    extras: Option<Box<Extras>>,
    breadcrumbs: VecDeque<Crumb>,
    transaction: Option<TxName>,
    level: Option<Level>,
    request: Option<Box<Request>>,
    request_source: Option<RequestSource>,
}

/// A breadcrumb as a scope keeps it: built, or the record of an outgoing call or a
/// cache operation that it is built from when something reads it (an event, or
/// [`Scope::breadcrumbs`]). A request makes many calls and few events: the request
/// thread keeps a copy of the call's compact record (its text shared), not a JSON map.
enum Crumb {
    Built(Breadcrumb),
    Deferred {
        /// When it happened, on the spans' clock.
        at: Instant,
        record: CrumbRecord,
    },
}

/// What a scope holds once something sets it (see [`Scope::extras`]).
#[derive(Clone, Default)]
struct Extras {
    tags: BTreeMap<String, String>,
    contexts: BTreeMap<String, Value>,
    extra: Map,
    fingerprint: Option<Vec<String>>,
}

static NO_TAGS: BTreeMap<String, String> = BTreeMap::new();
static NO_CONTEXTS: BTreeMap<String, Value> = BTreeMap::new();

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("user", &self.user)
            .field("tags", self.tags())
            .field("contexts", &self.contexts().keys())
            .field("breadcrumbs", &self.breadcrumbs.len())
            .field(
                "fingerprint",
                &self.extras.as_ref().and_then(|e| e.fingerprint.as_ref()),
            )
            .field("transaction", &self.transaction())
            .finish_non_exhaustive()
    }
}

impl Scope {
    fn new(client: Arc<dyn Outlet>) -> Self {
        Scope {
            client,
            user: None,
            extras: None,
            breadcrumbs: VecDeque::new(),
            transaction: None,
            level: None,
            request: None,
            request_source: None,
        }
    }

    /// Sets (or clears) the user.
    pub fn set_user(&mut self, user: Option<User>) {
        self.user = user.map(Box::new);
    }

    /// The user, if set.
    pub fn user(&self) -> Option<&User> {
        self.user.as_deref()
    }

    /// Sets a tag (indexed, searchable).
    pub fn set_tag(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.extras_mut().tags.insert(key.into(), value.into());
    }

    /// Removes a tag.
    pub fn remove_tag(&mut self, key: &str) {
        if let Some(extras) = &mut self.extras {
            extras.tags.remove(key);
        }
    }

    /// The tags.
    pub fn tags(&self) -> &BTreeMap<String, String> {
        self.extras.as_ref().map_or(&NO_TAGS, |e| &e.tags)
    }

    /// Sets a named context: a JSON object such as `{"id": 7, "total": "19.90"}`.
    pub fn set_context(&mut self, name: impl Into<String>, context: impl Into<Value>) {
        self.extras_mut()
            .contexts
            .insert(name.into(), context.into());
    }

    /// The contexts.
    pub fn contexts(&self) -> &BTreeMap<String, Value> {
        self.extras.as_ref().map_or(&NO_CONTEXTS, |e| &e.contexts)
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Sets one piece of extra (unindexed) data.
    pub fn set_extra(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.extras_mut().extra.insert(key.into(), value.into());
    }

    /// Adds a breadcrumb, after `before_breadcrumb`. When the scope holds
    /// `max_breadcrumbs` already, the oldest is dropped (and counted).
    pub fn add_breadcrumb(&mut self, breadcrumb: Breadcrumb) {
        let counters = &self.client;
        let breadcrumb = match &self.client.settings().before_breadcrumb {
            None => breadcrumb,
            Some(filter) => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| filter(breadcrumb)))
                {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        counters.breadcrumb_dropped();
                        return;
                    }
                    Err(_) => {
                        counters.callback_panicked();
                        counters.breadcrumb_dropped();
                        return;
                    }
                }
            }
        };
        self.push_crumb(Crumb::Built(breadcrumb));
    }

    /// Adds the breadcrumb `record` makes, as of `at`: built only when read, unless
    /// `before_breadcrumb` must see it now.
    pub(crate) fn add_deferred_breadcrumb(&mut self, at: Instant, record: CrumbRecord) {
        if self.client.settings().before_breadcrumb.is_some() {
            let at = Clock::of(at).start;
            self.add_breadcrumb(record.breadcrumb(at));
        } else {
            self.push_crumb(Crumb::Deferred { at, record });
        }
    }

    fn push_crumb(&mut self, crumb: Crumb) {
        let counters = &self.client;
        let max = self.client.settings().max_breadcrumbs;
        if max == 0 {
            counters.breadcrumb_dropped();
            return;
        }
        while self.breadcrumbs.len() >= max {
            self.breadcrumbs.pop_front();
            counters.breadcrumb_dropped();
        }
        self.breadcrumbs.push_back(crumb);
    }

    /// The breadcrumbs, oldest first. Those of outgoing calls and cache operations are
    /// built as they are read.
    pub fn breadcrumbs(&self) -> impl ExactSizeIterator<Item = Cow<'_, Breadcrumb>> {
        let clock = Clock::of(crate::scope::spans::now());
        self.breadcrumbs.iter().map(move |crumb| match crumb {
            Crumb::Built(breadcrumb) => Cow::Borrowed(breadcrumb),
            Crumb::Deferred { at, record } => Cow::Owned(record.breadcrumb(clock.at(*at))),
        })
    }

    /// Overrides grouping for events of this scope. `{{ default }}` stands for the
    /// default grouping: `["{{ default }}", tenant]` splits each issue per tenant.
    pub fn set_fingerprint(&mut self, fingerprint: Option<Vec<String>>) {
        match (fingerprint, &mut self.extras) {
            (None, None) => {}
            (None, Some(extras)) => extras.fingerprint = None,
            (Some(fingerprint), _) => self.extras_mut().fingerprint = Some(fingerprint),
        }
    }

    /// Renames the transaction (the route, by default).
    pub fn set_transaction(&mut self, name: impl Into<String>) {
        self.transaction = Some(TxName::new(&name.into()));
    }

    /// The transaction name.
    pub fn transaction(&self) -> Option<&str> {
        self.transaction.as_ref().map(TxName::as_str)
    }

    /// Forces the level of events captured in this scope.
    pub fn set_level(&mut self, level: Option<Level>) {
        self.level = level;
    }

    /// Sets the HTTP request that events carry. Adapters call this.
    pub fn set_request(&mut self, request: Request) {
        self.request = Some(Box::new(request));
    }

    /// The HTTP request, if set.
    pub fn request(&self) -> Option<&Request> {
        self.request.as_deref()
    }

    /// Sets how to build the HTTP request context when a record needs it. A request
    /// set with [`set_request`](Self::set_request) wins.
    pub fn set_request_source(&mut self, source: RequestSource) {
        self.request_source = Some(source);
    }

    fn apply_to_event(&self, event: &mut Event) {
        if event.user.is_none() {
            event.user = self.user.as_deref().cloned();
        }
        if let Some(extras) = &self.extras {
            for (k, v) in &extras.tags {
                event.tags.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &extras.contexts {
                event.contexts.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &extras.extra {
                event.extra.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if event.breadcrumbs.values.is_empty() {
            event.breadcrumbs.values = self.breadcrumbs().map(Cow::into_owned).collect();
        }
        if event.fingerprint.is_empty()
            && let Some(fp) = self.extras.as_ref().and_then(|e| e.fingerprint.as_ref())
        {
            event.fingerprint.clone_from(fp);
        }
        if event.transaction.is_none() {
            event.transaction = self.transaction().map(str::to_owned);
        }
        if let Some(level) = self.level {
            event.level = level;
        }
        if event.request.is_none() {
            event.request = self.request.as_deref().cloned();
        }
    }
}

// ---------------------------------------------------------------------------------------
// RequestScope

/// The scope of one request (or task): its [`Scope`], its place in a trace, and the
/// spans recorded under it. Shared as `Arc<RequestScope>`; nothing in it is shared
/// between requests.
pub struct RequestScope {
    /// The client it reports to.
    client: Arc<dyn Outlet>,
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    sampled: bool,
    op: Cow<'static, str>,
    /// When the request started. Wall-clock times are derived on the worker: one clock
    /// read at each end of a request.
    started: Instant,
    /// The HTTP request's facts, when an adapter started the scope: read without the
    /// lock, and copied into the transaction's batch when it finishes.
    http: Option<crate::http::HttpRequest>,
    /// Queries run under the scope, sampled or not, for its route's metrics.
    queries: AtomicU32,
    state: Mutex<State>,
}

struct State {
    scope: Scope,
    spans: Vec<PendingSpan>,
    spans_dropped: u64,
    finished: bool,
    /// The transaction handed to the worker, and when: spans that close just after
    /// the request finished still reach it (see [`pending::LATE_SPAN_GRACE`]).
    sent: Option<(EventId, Instant)>,
}

impl fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestScope")
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("sampled", &self.sampled)
            .field("op", &self.op)
            .finish_non_exhaustive()
    }
}

/// Starts a [`RequestScope`]: names it, continues a trace, and decides sampling once.
#[must_use]
pub struct ScopeBuilder<'a> {
    client: Arc<dyn Outlet>,
    name: TxName,
    op: Cow<'static, str>,
    parent: Option<TraceParent>,
    method: Option<&'a str>,
    route: Option<&'a str>,
    headers: Option<&'a http::HeaderMap>,
    sampled: Option<bool>,
    request: Option<Box<Request>>,
    request_source: Option<RequestSource>,
    http: Option<crate::http::HttpRequest>,
}

impl<'a> ScopeBuilder<'a> {
    /// The operation (`http.server`, `task`). Default `task`.
    #[inline]
    pub fn op(mut self, op: impl Into<Cow<'static, str>>) -> Self {
        self.op = op.into();
        self
    }

    /// Continues the caller's trace (from `traceparent` or `sentry-trace`), honouring
    /// its sampling decision.
    #[inline]
    pub fn continue_trace(mut self, parent: Option<TraceParent>) -> Self {
        self.parent = parent;
        self
    }

    /// The method, route and headers the traces sampler sees.
    #[inline]
    pub fn sampling_input(
        mut self,
        method: Option<&'a str>,
        route: Option<&'a str>,
        headers: Option<&'a http::HeaderMap>,
    ) -> Self {
        self.method = method;
        self.route = route;
        self.headers = headers;
        self
    }

    /// Forces the sampling decision.
    #[inline]
    pub fn sampled(mut self, sampled: bool) -> Self {
        self.sampled = Some(sampled);
        self
    }

    /// The HTTP request that events and the transaction carry.
    #[inline]
    pub fn request(mut self, request: Request) -> Self {
        self.request = Some(Box::new(request));
        self
    }

    /// Builds the HTTP request context on demand, on the worker (see [`RequestSource`]).
    #[inline]
    pub fn request_source(mut self, source: RequestSource) -> Self {
        self.request_source = Some(source);
        self
    }

    /// The HTTP request's facts, which the scope keeps inline (what both adapters
    /// give): records build their request context from them, on the worker. A request
    /// or request source set on the scope wins.
    #[inline]
    pub fn http_request(mut self, http: crate::http::HttpRequest) -> Self {
        self.http = Some(http);
        self
    }

    /// Decides sampling and creates the scope.
    pub fn start(self) -> Arc<RequestScope> {
        let parent_sampled = self.parent.as_ref().and_then(|p| p.sampled);
        let sampled = match (self.sampled, parent_sampled) {
            (Some(sampled), _) | (None, Some(sampled)) => sampled,
            // No sampler to ask: the rate alone decides, with no context to build.
            (None, None) if !self.client.has_traces_sampler() => self.client.sample_by_rate(),
            (None, None) => self.client.sample_transaction(&SamplingContext {
                name: self.name.as_str(),
                op: &self.op,
                method: self.method,
                route: self.route,
                headers: self.headers,
                parent_sampled,
            }),
        };
        // Free what the worker is done with of one transaction here, on a request
        // thread (see `crate::pipeline::reuse`). Only sampled requests become
        // transactions, so one free per sampled request keeps pace with the worker;
        // an unsampled request does not touch the shared pool at all.
        if sampled {
            self.client.free_retired();
        }
        let mut scope = Scope::new(self.client.clone());
        scope.transaction = Some(self.name);
        scope.request = self.request;
        scope.request_source = self.request_source;
        let (trace_id, parent_span_id) = match &self.parent {
            Some(p) => (p.trace_id, Some(p.parent_span_id)),
            None => (TraceId::new(), None),
        };
        Arc::new(RequestScope {
            client: self.client,
            trace_id,
            span_id: SpanId::new(),
            parent_span_id,
            sampled,
            op: self.op,
            started: crate::scope::spans::now(),
            http: self.http,
            queries: AtomicU32::new(0),
            state: Mutex::new(State {
                scope,
                spans: Vec::new(),
                spans_dropped: 0,
                finished: false,
                sent: None,
            }),
        })
    }
}

impl RequestScope {
    /// Starts building a scope that reports to `client` (see `RequestScope::builder` and
    /// `http_builder`, in `crate::client`).
    #[inline]
    pub(crate) fn named<'a>(client: Arc<dyn Outlet>, name: TxName) -> ScopeBuilder<'a> {
        ScopeBuilder {
            client,
            name,
            op: Cow::Borrowed("task"),
            parent: None,
            method: None,
            route: None,
            headers: None,
            sampled: None,
            request: None,
            request_source: None,
            http: None,
        }
    }

    /// The scope bound to the current thread, if any.
    pub fn current() -> Option<Arc<RequestScope>> {
        CURRENT.with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
    }

    /// The client this scope reports to, as the scope sees it.
    pub(crate) fn outlet(&self) -> &Arc<dyn Outlet> {
        &self.client
    }

    /// The settings of the client this scope reports to.
    pub(crate) fn settings(&self) -> &crate::options::Settings {
        self.client.settings()
    }

    /// The trace this request belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The request's root span.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// Whether this request is recorded as a transaction.
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// When the request started.
    pub fn started(&self) -> std::time::Instant {
        // Spans run on their own clock (`crate::scope::spans::Instant`): translated.
        let now = std::time::Instant::now();
        let ago = crate::scope::spans::now().saturating_duration_since(self.started);
        now.checked_sub(ago).unwrap_or(now)
    }

    /// The `traceparent` header value for outgoing calls made on behalf of this request.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id,
            self.span_id,
            if self.sampled { "01" } else { "00" }
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside `configure` poisons the lock; the data is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the scope's data.
    ///
    /// Inside `f`, change the scope through the `&mut Scope` given: a nested call to
    /// `configure` (or `backstop::set_tag` and friends) on the same thread would need
    /// the lock `f` already holds, so its changes are discarded with a warning instead
    /// of deadlocking.
    pub fn configure<R>(&self, f: impl FnOnce(&mut Scope) -> R) -> R {
        if Reentry::active() {
            tracing::warn!(
                target: "backstop",
                "scope configured from inside `configure`; use the `&mut Scope` given instead (change discarded)"
            );
            return f(&mut Scope::new(self.client.clone()));
        }
        let mut state = self.lock();
        let _reentry = Reentry::enter();
        f(&mut state.scope)
    }

    /// Records a finished child span. Spans past `max_spans` are counted, not kept.
    pub fn add_span(&self, span: Span) {
        self.push_span(PendingSpan::Done(Box::new(span)));
    }

    /// Records a span seen by the tracing layer or a database guard.
    pub(crate) fn record_span(&self, span: Recorded) {
        self.push_span(PendingSpan::Recorded(span));
    }

    /// Leaves the breadcrumb `record` makes (see [`Scope::add_deferred_breadcrumb`]) and
    /// records `span` (in a sampled request), under one lock: what an outgoing call or
    /// a cache operation does when it ends.
    pub(crate) fn record_with_breadcrumb(
        &self,
        at: Instant,
        record: CrumbRecord,
        span: Option<Recorded>,
    ) {
        if Reentry::active() {
            // Inside `configure` on this thread: as `configure` would have it.
            self.configure(|s| s.add_deferred_breadcrumb(at, record));
            if let Some(span) = span {
                self.record_span(span);
            }
            return;
        }
        let mut state = self.lock();
        {
            let _reentry = Reentry::enter();
            state.scope.add_deferred_breadcrumb(at, record);
        }
        if let Some(span) = span.filter(|_| self.sampled) {
            self.push_locked(state, PendingSpan::Recorded(span));
        }
    }

    /// Counts a query run under this scope, for its route's metrics: every request's,
    /// sampled or not.
    #[inline]
    pub(crate) fn count_query(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    fn push_span(&self, span: PendingSpan) {
        if !self.sampled {
            return;
        }
        self.push_locked(self.lock(), span);
    }

    fn push_locked(&self, mut state: MutexGuard<'_, State>, span: PendingSpan) {
        let max = self.client.settings().max_spans;
        if state.finished {
            // A span that outlived its request by a moment (a driver thread still
            // holding it, say) joins the transaction on the worker.
            let late = state
                .sent
                .filter(|(_, at)| at.elapsed() < pending::LATE_SPAN_GRACE);
            drop(state);
            match late {
                Some((id, _)) => self.client.send_late_span(id, span),
                None => self.client.spans_dropped(1),
            }
            return;
        }
        if state.spans.len() >= max {
            state.spans_dropped += 1;
            drop(state);
            self.client.spans_dropped(1);
            return;
        }
        if state.spans.capacity() == 0 {
            state.spans = self.client.span_list();
        }
        state.spans.push(span);
    }

    /// Captures an event with this scope's context. Returns its id at once.
    pub fn capture_event(&self, mut event: Event) -> EventId {
        let source = self.apply(&mut event);
        self.client
            .send_event(event, None, Some(self.trace_link(source)))
    }

    fn trace_link(&self, request_source: Option<RequestSource>) -> TraceLink {
        TraceLink {
            trace_id: self.trace_id,
            span_id: self.span_id,
            op: self.op.clone(),
            request_source,
        }
    }

    /// Captures a message.
    pub fn capture_message(&self, message: impl Into<String>, level: Level) -> EventId {
        self.capture_event(message_event(message.into(), level))
    }

    /// Captures an error and its whole `source()` chain.
    pub fn capture_error<E: std::error::Error + ?Sized>(&self, error: &E) -> EventId {
        self.capture_event(error_event(error))
    }

    /// Records a panic that the adapter caught with `catch_unwind`, with the message,
    /// location and backtrace the panic hook saw, as an unhandled `panic`. Returns the
    /// event id (the one already recorded, if the panic was reported on the way out of
    /// an inner scope).
    pub fn capture_panic(&self, payload: &(dyn std::any::Any + Send)) -> EventId {
        self.capture_panic_detailed(payload, false).0
    }

    /// Like [`capture_panic`](Self::capture_panic), also returning what a debug page
    /// shows. With `frames`, the backtrace is symbolised here, on the request's thread:
    /// slow, so adapters ask only when the debug page is on.
    pub fn capture_panic_detailed(
        &self,
        payload: &(dyn std::any::Any + Send),
        frames: bool,
    ) -> (EventId, crate::capture::panic::PanicDetails) {
        let record = match crate::capture::panic::take_last() {
            Some(record) => record,
            None => {
                if let Some(id) = crate::capture::panic::take_reported() {
                    let details = crate::capture::panic::PanicDetails {
                        message: crate::capture::panic::payload_message(payload),
                        ..Default::default()
                    };
                    return (id, details);
                }
                crate::capture::panic::PanicRecord::from_payload(payload)
            }
        };
        let details = record.details(self.client.settings(), frames);
        let (mut event, backtrace) = crate::capture::panic::panic_event(record);
        let source = self.apply(&mut event);
        let id = self
            .client
            .send_event(event, backtrace, Some(self.trace_link(source)));
        (id, details)
    }

    /// Reports a panic leaving a bound region that nothing in Backstop will catch.
    fn report_escaping_panic(&self) {
        if let Some(record) = crate::capture::panic::take_last() {
            let (mut event, backtrace) = crate::capture::panic::panic_event(record);
            let source = self.apply(&mut event);
            let id = self
                .client
                .send_event(event, backtrace, Some(self.trace_link(source)));
            crate::capture::panic::set_reported(id);
        }
    }

    /// Applies the scope to an event; returns the request source for the worker when
    /// the event has no request yet.
    fn apply(&self, event: &mut Event) -> Option<RequestSource> {
        if Reentry::active() {
            // Called from inside `configure` on this thread: the lock is ours already.
            // The event goes out with the trace link only.
            return None;
        }
        let state = self.lock();
        state.scope.apply_to_event(event);
        if event.request.is_some() {
            return None;
        }
        let source = state.scope.request_source.clone();
        drop(state);
        // The request's facts go along as a copy, built on the worker.
        source.or_else(|| {
            self.http
                .as_ref()
                .map(|http| Arc::new(http.clone()) as RequestSource)
        })
    }

    /// The HTTP request's facts, when an adapter started this scope.
    pub fn http_request(&self) -> Option<&crate::http::HttpRequest> {
        self.http.as_ref()
    }

    /// Ends the request with an HTTP status: maps it to a span status and records it.
    pub fn finish_http(self: &Arc<Self>, status: u16) -> Option<EventId> {
        self.finish_inner(SpanStatus::from_http(status), Some(status), None)
    }

    /// Ends the request. If it was sampled, its transaction (with every span) is
    /// handed to the pipeline; returns the transaction's id. Only the first call counts.
    pub fn finish(self: &Arc<Self>, status: SpanStatus) -> Option<EventId> {
        self.finish_inner(status, None, None)
    }

    /// Like [`finish`](Self::finish), with extra data for the root span.
    pub fn finish_with(self: &Arc<Self>, status: SpanStatus, data: Map) -> Option<EventId> {
        self.finish_inner(status, None, Some(data))
    }

    fn finish_inner(
        self: &Arc<Self>,
        status: SpanStatus,
        http_status: Option<u16>,
        // An empty map costs a call to drop: most requests aren't sampled.
        data: Option<Map>,
    ) -> Option<EventId> {
        let mut state = self.lock();
        if state.finished {
            return None;
        }
        state.finished = true;
        let ended = crate::scope::spans::now();
        let route = state
            .scope
            .transaction
            .as_ref()
            .map_or("<unnamed>", TxName::as_str);
        self.count_metrics(route, ended, status, http_status);
        if !self.sampled {
            return None;
        }
        let spans = std::mem::take(&mut state.spans);
        let spans_dropped = state.spans_dropped;
        let scope = &state.scope;
        // Only what the request thread must hand over: the worker builds the rest.
        let extras = scope
            .extras
            .as_deref()
            .filter(|e| !e.tags.is_empty() || !e.contexts.is_empty() || !e.extra.is_empty());
        let has_context = scope.user.is_some() || extras.is_some() || scope.request.is_some();
        let context = has_context.then(|| {
            Box::new(ScopeContext {
                user: scope.user.as_deref().cloned(),
                tags: extras.map(|e| e.tags.clone()).unwrap_or_default(),
                contexts: extras.map(|e| e.contexts.clone()).unwrap_or_default(),
                extra: extras.map(|e| e.extra.clone()).unwrap_or_default(),
                request: scope.request.as_deref().cloned(),
            })
        });
        let request_source = match scope.request {
            None => scope.request_source.clone(),
            Some(_) => None,
        };
        // With neither set on the scope, the transaction copies the HTTP facts.
        let facts = match (&scope.request, &request_source) {
            (None, None) => self.http.as_ref().map(crate::http::HttpRequest::facts),
            _ => None,
        };
        let name = scope
            .transaction
            .clone()
            .unwrap_or_else(|| TxName::new("<unnamed>"));
        let event_id = EventId::new();
        state.sent = Some((event_id, ended));
        drop(state);
        let late_spans = self.may_get_late_spans();
        self.client.send_transaction(
            PendingTransaction {
                event_id,
                name,
                started: self.started,
                ended,
                spans,
                spans_dropped,
                context,
                trace: self.trace_link(request_source),
                parent_span_id: self.parent_span_id,
                status,
                http_status,
                late_spans,
                data: data.unwrap_or_default(),
                request: Default::default(),
            },
            facts,
        );
        Some(event_id)
    }

    /// Adds this request to its route's metrics, on this thread (see `crate::metrics`).
    #[inline]
    fn count_metrics(
        &self,
        route: &str,
        ended: Instant,
        status: SpanStatus,
        http_status: Option<u16>,
    ) {
        let took = ended.saturating_duration_since(self.started);
        let sample = crate::metrics::Sample {
            minute: self.client.metrics().clock.minute(ended),
            micros: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            error: crate::metrics::is_error(status, http_status),
            queries: self.queries.load(Ordering::Relaxed),
        };
        self.client.metrics().add(route, sample);
    }

    /// Whether a span could still join this scope's transaction once it is finished:
    /// only through another handle on the scope. With none (no task, no live tracing
    /// span holds it), the worker need not wait for any. A handle dropped meanwhile
    /// only makes it wait needlessly.
    fn may_get_late_spans(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) > 1 || Arc::weak_count(self) > 0
    }

    /// Whether `finish` has been called.
    pub fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// Makes this the current scope of this thread until the guard drops.
    pub fn enter(self: &Arc<Self>) -> ScopeGuard {
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        ScopeGuard {
            previous,
            _not_send: PhantomData,
        }
    }

    /// Makes the scope in `slot` the current one until the guard drops, moving it into
    /// the thread's slot and back rather than cloning it: what adapters do around each
    /// poll of a request's future. The slot is empty meanwhile; an empty slot leaves
    /// no scope current.
    #[inline]
    pub fn enter_moved(slot: &mut Option<Arc<RequestScope>>) -> MovedGuard<'_> {
        let previous = CURRENT.with(|c| c.replace(slot.take()));
        MovedGuard { slot, previous }
    }

    /// Runs `f` with this as the current scope.
    pub fn run<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        let _guard = self.enter();
        f()
    }

    /// Binds this scope to a future: it is the current scope whenever the future runs,
    /// on whichever thread.
    pub fn bind<F: Future>(self: Arc<Self>, future: F) -> Bound<F> {
        Bound {
            scope: Some(self),
            inner: future,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Binding to threads and futures

thread_local! {
    static CURRENT: RefCell<Option<Arc<RequestScope>>> = const { RefCell::new(None) };
    static IN_CONFIGURE: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread has a current scope (for the panic hook: no clone, no lock).
pub(crate) fn has_current() -> bool {
    CURRENT.with(|c| c.try_borrow().map(|c| c.is_some()).unwrap_or(true))
}

/// Marks that this thread holds a scope's lock inside `configure`.
struct Reentry;

impl Reentry {
    fn enter() -> Reentry {
        IN_CONFIGURE.with(|c| c.set(c.get() + 1));
        Reentry
    }

    fn active() -> bool {
        IN_CONFIGURE.with(|c| c.get() > 0)
    }
}

impl std::ops::Drop for Reentry {
    fn drop(&mut self) {
        IN_CONFIGURE.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Keeps a scope current until dropped; restores the previous one. Not `Send`: it
/// belongs to the thread that entered.
#[must_use = "the scope is current only while the guard lives"]
pub struct ScopeGuard {
    previous: Option<Arc<RequestScope>>,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ScopeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScopeGuard")
    }
}

impl std::ops::Drop for ScopeGuard {
    fn drop(&mut self) {
        let mine = CURRENT.with(|c| c.replace(self.previous.take()));
        if std::thread::panicking()
            && let Some(scope) = mine
        {
            scope.report_escaping_panic();
        }
    }
}

pin_project_lite::pin_project! {
    /// A future with a [`RequestScope`] bound to it. See [`RequestScope::bind`] and
    /// [`bind`].
    pub struct Bound<F> {
        scope: Option<Arc<RequestScope>>,
        #[pin]
        inner: F,
    }
}

impl<F> fmt::Debug for Bound<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Bound<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.scope.is_none() {
            return this.inner.poll(cx);
        }
        // Move the scope into the thread-local for the poll and back out after: no
        // reference-count traffic per poll.
        let _entered = RequestScope::enter_moved(this.scope);
        this.inner.poll(cx)
    }
}

/// Keeps a scope moved out of its slot current until dropped, then moves it back (see
/// [`RequestScope::enter_moved`]).
#[must_use = "the scope is current only while the guard lives"]
pub struct MovedGuard<'a> {
    slot: &'a mut Option<Arc<RequestScope>>,
    previous: Option<Arc<RequestScope>>,
}

impl fmt::Debug for MovedGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MovedGuard")
    }
}

impl std::ops::Drop for MovedGuard<'_> {
    fn drop(&mut self) {
        let mine = CURRENT.with(|c| c.replace(self.previous.take()));
        if std::thread::panicking()
            && let Some(scope) = &mine
        {
            scope.report_escaping_panic();
        }
        *self.slot = mine;
    }
}

/// Binds the current scope (if any) to a future, so work spawned by a handler keeps
/// the request's context:
///
/// ```
/// # async fn handler() {
/// tokio::spawn(backstop_core::bind(async {
///     backstop_core::add_breadcrumb(backstop_core::Breadcrumb::new("email", "queued"));
/// }));
/// # }
/// ```
pub fn bind<F: Future>(future: F) -> Bound<F> {
    Bound {
        scope: RequestScope::current(),
        inner: future,
    }
}

/// Runs `f` with the current scope, if there is one. The thread-local is released
/// before `f` runs, so `f` may bind other scopes.
pub(crate) fn with_current<R>(f: impl FnOnce(&Arc<RequestScope>) -> R) -> Option<R> {
    RequestScope::current().map(|s| f(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_scope_held_elsewhere_may_get_late_spans() {
        let backstop = crate::Client::start(
            crate::Options::new()
                .console(false)
                .install_panic_hook(false),
        )
        .unwrap();
        let scope = RequestScope::builder(&backstop, "GET /")
            .sampled(true)
            .start();
        assert!(
            !scope.may_get_late_spans(),
            "the finishing code's handle only"
        );
        let task = scope.clone();
        assert!(scope.may_get_late_spans(), "a task holds it");
        drop(task);
        let weak = Arc::downgrade(&scope);
        assert!(scope.may_get_late_spans());
        drop(weak);
        {
            let _entered = scope.enter();
            assert!(scope.may_get_late_spans(), "current on this thread");
        }
        assert!(!scope.may_get_late_spans());
    }
}
