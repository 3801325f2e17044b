//! One request's lifecycle, the same for every framework: [`Exchange`] starts it,
//! decides what becomes of the response, answers a panic, and finishes it;
//! [`ExchangeFuture`] drives it around the application's future. An adapter supplies
//! only what is its framework's own: a [`RequestHead`] to read the request through,
//! and a [`ResponseGlue`] to take its responses apart and build them again.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

mod config;
mod errors;

pub use config::{AdapterConfig, AppMount, PageDebug, PageRenderer, PageRequest, UserFrom};
pub use errors::{KnownError, KnownErrors};

use crate::client::Client;
use crate::http::{
    BodyCapture, FlatRequest, HttpOptions, HttpRequest, PageDecision, REPLACED_HEADERS, header_map,
    new_request_id_bytes, status_event, version_name,
};
use crate::protocol::{Event, EventId, SpanStatus};
use crate::scope::RequestScope;

/// The rule that needs the client: kept with the lifecycle, so the HTTP rules below
/// don't import the client.
impl HttpOptions {
    /// Whether a response with this status is recorded as an error event: in the
    /// capture set and not ignored by the client's `ignore_status`.
    pub fn captures(&self, client: &Client, status: u16) -> bool {
        self.capture.iter().any(|r| r.contains(&status)) && !client.is_status_ignored(status)
    }
}

/// An incoming request, as an adapter reads it from its framework.
pub trait RequestHead {
    /// The framework's header value: the response echoes the request id in it.
    type HeaderValue;

    /// The method.
    fn method(&self) -> http::Method;
    /// The URI as received: scheme and authority (when absolute), path and query.
    fn uri(&self) -> (Option<&str>, Option<&str>, Option<&str>);
    /// The HTTP version.
    fn version(&self) -> http::Version;
    /// Every header, in order (names lowercase).
    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])>;
    /// The first value of one header (asked only for rarely needed ones).
    fn header(&self, name: &'static str) -> Option<&[u8]>;
    /// The incoming request id header's own value, to echo without a copy.
    fn incoming_request_id(&self) -> Option<Self::HeaderValue>;
    /// A generated request id as a header value.
    fn new_request_id(id: bytes::Bytes) -> Option<Self::HeaderValue>;
    /// The connection's peer.
    fn peer(&self) -> Option<IpAddr>;
    /// Whether the connection is TLS (or the URI says `https`).
    fn is_tls(&self) -> bool;
    /// The headers as `http` 1 gives them, for the traces sampler (asked only when
    /// one is set). By default, a copy of [`headers`](Self::headers).
    fn sampler_headers(&self) -> Cow<'_, http::HeaderMap> {
        Cow::Owned(header_map(self.headers()))
    }
}

/// What to do with a response, once it is recorded if it is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it as it is.
    Keep,
    /// Replace it with a page.
    Page {
        /// The event recorded for it, if any.
        event_id: Option<EventId>,
        /// Read the (small, plain-text) body first: it becomes the page's detail.
        detail_from_body: bool,
    },
}

/// One request in flight: its scope, the id its response echoes, and its route.
pub struct Exchange<Id, Route> {
    /// Always there until the request finishes, but while a poll has moved it into
    /// the thread's current slot.
    scope: Option<Arc<RequestScope>>,
    request_id: Option<Id>,
    route: Option<Route>,
}

impl<Id, Route> fmt::Debug for Exchange<Id, Route> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<Id, Route> Drop for Exchange<Id, Route> {
    fn drop(&mut self) {
        // Dropped before it finished: the client went away. The transaction ends as
        // aborted; nothing stays behind.
        if let Some(scope) = self.scope.take() {
            scope.finish(SpanStatus::Aborted);
        }
    }
}

impl<Id, Route: AsRef<str>> Exchange<Id, Route> {
    /// Opens the request's scope: copies the request's facts in one pass over its
    /// headers, reuses a sane incoming request id or makes one, continues the
    /// caller's trace, finds the client and scheme behind trusted proxies, decides
    /// sampling, and asks `user_from` (a panic in it is contained).
    pub fn start<H, R, P, M>(
        config: &AdapterConfig<R, P, M>,
        head: &H,
        user_input: &R,
        route: Option<Route>,
        body: Option<Arc<BodyCapture>>,
    ) -> Self
    where
        H: RequestHead<HeaderValue = Id>,
        R: ?Sized,
    {
        let http = &config.http;
        let client = &config.client;
        let (scheme, authority, path_and_query) = head.uri();
        let (mut flat, found) = FlatRequest::at_start(
            scheme,
            authority,
            path_and_query,
            http.request_id_header_name().as_str(),
            || head.headers(),
        );
        let trace = found.trace();
        // Reuse a sane incoming id (the request's own header value, not a copy);
        // otherwise make one.
        let incoming = found
            .request_id()
            .and_then(|id| Some((id, head.incoming_request_id()?)));
        let request_id = match incoming {
            Some((id, value)) => {
                flat.set_request_id(id);
                Some(value)
            }
            None => {
                let id = new_request_id_bytes();
                flat.set_request_id(&id);
                H::new_request_id(id)
            }
        };
        let (client_ip, scheme) =
            http.client_and_scheme(head.peer(), head.is_tls(), |name| head.header(name));
        let method = head.method();
        let route_name = route.as_ref().map(AsRef::as_ref);
        let sampler_headers = client.has_traces_sampler().then(|| head.sampler_headers());
        let scope = RequestScope::http_builder(client, method.as_str(), route_name)
            .op("http.server")
            .continue_trace(trace)
            .sampling_input(
                Some(method.as_str()),
                route_name,
                sampler_headers.as_deref(),
            )
            .http_request(HttpRequest {
                // Standard methods clone without allocating.
                method: method.clone(),
                scheme,
                version: version_name(head.version()),
                client_ip,
                flat,
                body,
            })
            .start();
        if let Some(user_from) = &config.user_from {
            let user = catch_unwind(AssertUnwindSafe(|| user_from(user_input)))
                .ok()
                .flatten();
            if let Some(user) = user {
                scope.configure(|s| s.set_user(Some(user)));
            }
        }
        Exchange {
            scope: Some(scope),
            request_id,
            route,
        }
    }

    /// The request's scope (there until the request finishes).
    pub fn scope(&self) -> Option<&Arc<RequestScope>> {
        self.scope.as_ref()
    }

    /// The request's facts, as copied at its start.
    pub fn request(&self) -> Option<&HttpRequest> {
        self.scope.as_ref()?.http_request()
    }

    /// Runs `f` (a call into the application, or a poll of its future) with the
    /// request's scope current, catching a panic.
    pub fn run<T>(&mut self, f: impl FnOnce() -> T) -> std::thread::Result<T> {
        let _entered = RequestScope::enter_moved(&mut self.scope);
        catch_unwind(AssertUnwindSafe(f))
    }

    /// The response is in: records it if it is an error (the handler's error as
    /// `error_event` builds it, else one named after the status), and decides whether
    /// the visitor gets a page instead, from the status, `Content-Type` and length.
    pub fn verdict<R: ?Sized, P, M>(
        &self,
        config: &AdapterConfig<R, P, M>,
        status: u16,
        error_event: impl FnOnce(u16) -> Option<Event>,
        content_type: Option<&[u8]>,
        body_len: Option<u64>,
    ) -> Verdict {
        if status < 400 {
            return Verdict::Keep;
        }
        let scope = self.scope.as_ref();
        let event_id = scope
            .filter(|_| config.http.captures(&config.client, status))
            .map(|scope| {
                let event = error_event(status).unwrap_or_else(|| {
                    let method = self.request().map_or("", |r| r.method.as_str());
                    status_event(status, method, self.route.as_ref().map(AsRef::as_ref))
                });
                scope.capture_event(event)
            });
        match config.http.page_decision(status, content_type, body_len) {
            PageDecision::Keep => Verdict::Keep,
            PageDecision::Replace { detail_from_body } => Verdict::Page {
                event_id,
                detail_from_body,
            },
        }
    }

    /// The page for an error response, with debug details only for a visitor who may
    /// see them. `None` once the request has finished.
    pub fn page<R: ?Sized, P: PageRenderer, M>(
        &self,
        config: &AdapterConfig<R, P, M>,
        status: http::StatusCode,
        event_id: Option<EventId>,
        detail: Option<String>,
        debug: Option<PageDebug<'_>>,
        response_headers: &http::HeaderMap,
    ) -> Option<http::Response<String>> {
        let request = self.request()?;
        let shows_debug = config.shows_debug_to(request.client_ip);
        Some(config.pages.render_page(&PageRequest {
            status,
            request,
            event_id,
            detail,
            shows_debug,
            debug: debug.filter(|_| shows_debug),
            response_headers,
        }))
    }

    /// A panic was caught: records it, and renders the 500 page.
    pub fn panic_page<R: ?Sized, P: PageRenderer, M>(
        &self,
        config: &AdapterConfig<R, P, M>,
        payload: &(dyn Any + Send),
    ) -> http::Response<String> {
        let status = http::StatusCode::INTERNAL_SERVER_ERROR;
        let (Some(scope), Some(request)) = (self.scope.as_ref(), self.request()) else {
            let mut response = http::Response::new(String::new());
            *response.status_mut() = status;
            return response;
        };
        let debug = config.shows_debug_to(request.client_ip);
        // Symbolising the backtrace is slow: only for a page that shows it.
        let (id, details) = scope.capture_panic_detailed(payload, debug);
        self.page(
            config,
            status,
            Some(id),
            None,
            Some(PageDebug::Panic(&details)),
            &http::HeaderMap::new(),
        )
        .unwrap_or_default()
    }

    /// Ends the request with the status it answered; returns the id its response
    /// carries (only on the first call).
    pub fn finish(&mut self, status: u16) -> Option<Id> {
        if let Some(scope) = self.scope.take() {
            scope.finish_http(status);
        }
        self.request_id.take()
    }

    /// Ends the request that failed without a response (the server decides what the
    /// client sees).
    pub fn fail(&mut self) {
        if let Some(scope) = self.scope.take() {
            scope.finish(SpanStatus::InternalError);
        }
    }
}

/// The original response's headers a page removes before its own go in: those that
/// described the old body ([`REPLACED_HEADERS`]) and those the page sets itself.
pub fn replaced_by_page(page: &http::HeaderMap) -> impl Iterator<Item = &str> {
    let own = page.keys().map(http::HeaderName::as_str);
    REPLACED_HEADERS.iter().copied().chain(own)
}

/// A page's headers merged into the original response's: those that described the
/// old body go ([`REPLACED_HEADERS`]), the page's own replace any of the same name,
/// and every other header (cookies, `Allow`, `Retry-After`, the team's own) stays.
pub fn merge_page_headers(original: &mut http::HeaderMap, page: http::HeaderMap) {
    for name in replaced_by_page(&page) {
        original.remove(name);
    }
    let mut last = None;
    for (name, value) in page {
        // `HeaderMap::into_iter` names a header once, before its first value.
        let name = match name {
            Some(name) => last.insert(name).clone(),
            None => match &last {
                Some(name) => name.clone(),
                None => continue,
            },
        };
        original.append(name, value);
    }
}

/// The framework side of an [`ExchangeFuture`]: how an adapter takes its
/// framework's responses apart and builds them again.
pub trait ResponseGlue {
    /// The request id's header value.
    type Id;
    /// The matched route.
    type Route: AsRef<str>;
    /// The application's response.
    type Inner;
    /// The response Backstop answers with.
    type Response;
    /// Reads a plain-text error body, for the page's detail.
    type Detail: Future<Output = Option<String>> + Unpin;
    /// What a page waiting for its detail keeps of the response.
    type Held;

    /// The application answered.
    fn respond(&self, exchange: &Exchange<Self::Id, Self::Route>, inner: Self::Inner)
    -> Step<Self>;

    /// The application panicked.
    fn panicked(
        &self,
        exchange: &Exchange<Self::Id, Self::Route>,
        payload: &(dyn Any + Send),
    ) -> Self::Response;

    /// The page, with the detail read from the body, if any.
    fn page(
        &self,
        exchange: &Exchange<Self::Id, Self::Route>,
        held: Self::Held,
        detail: Option<String>,
    ) -> Self::Response;

    /// The status of a response about to go out.
    fn status(response: &Self::Response) -> u16;

    /// Echoes the request id on the response.
    fn set_request_id(&self, response: &mut Self::Response, id: Self::Id);
}

/// What an adapter does when the application fails with `E` instead of a response.
pub trait FailedGlue<E>: ResponseGlue {
    /// Answers anyway (`Ok`), or passes the error on to the server (`Err`): then the
    /// request ends as an internal error.
    fn failed(&self, exchange: &Exchange<Self::Id, Self::Route>, error: E)
    -> Result<Step<Self>, E>;
}

/// What becomes of a response.
pub enum Step<G: ResponseGlue + ?Sized> {
    /// It is ready.
    Ready(G::Response),
    /// It becomes a page, once the body's text is read when there is a reader.
    Page(G::Held, Option<G::Detail>),
}

/// A plain-text error body as a page's detail: trimmed, and only if there is any.
pub fn detail_text(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

pin_project_lite::pin_project! {
    /// The response future both adapters return: the application's future, run with
    /// the request's scope current and panics caught, then the response's verdict.
    pub struct ExchangeFuture<F, G: ResponseGlue> {
        #[pin]
        state: State<F, G>,
        exchange: Exchange<G::Id, G::Route>,
        glue: G,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, G: ResponseGlue> {
        Running { #[pin] future: F },
        ReadingDetail { detail: G::Detail, held: Option<G::Held> },
        Ready { response: Option<G::Response> },
        Done,
    }
}

impl<F, G: ResponseGlue> fmt::Debug for ExchangeFuture<F, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeFuture")
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}

impl<F, G: ResponseGlue> ExchangeFuture<F, G> {
    /// Calls the application (`call`) with the request's scope current: its future,
    /// or the panic page when the call itself panicked.
    pub fn call(
        mut exchange: Exchange<G::Id, G::Route>,
        glue: G,
        call: impl FnOnce() -> F,
    ) -> Self {
        let state = match exchange.run(call) {
            Ok(future) => State::Running { future },
            Err(payload) => State::Ready {
                response: Some(glue.panicked(&exchange, &*payload)),
            },
        };
        ExchangeFuture {
            state,
            exchange,
            glue,
        }
    }
}

impl<F, G, E> Future for ExchangeFuture<F, G>
where
    F: Future<Output = Result<G::Inner, E>>,
    G: FailedGlue<E>,
{
    type Output = Result<G::Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Running { future } => match this.exchange.run(|| future.poll(cx)) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(Ok(inner))) => this.glue.respond(this.exchange, inner),
                    Ok(Poll::Ready(Err(error))) => match this.glue.failed(this.exchange, error) {
                        Ok(step) => step,
                        Err(error) => {
                            this.exchange.fail();
                            this.state.set(State::Done);
                            return Poll::Ready(Err(error));
                        }
                    },
                    Err(payload) => Step::Ready(this.glue.panicked(this.exchange, &*payload)),
                },
                StateProj::ReadingDetail { detail, held } => {
                    let text = ready!(Pin::new(detail).poll(cx));
                    match held.take() {
                        Some(held) => Step::Ready(this.glue.page(this.exchange, held, text)),
                        None => return Poll::Pending,
                    }
                }
                StateProj::Ready { response } => match response.take() {
                    Some(response) => Step::Ready(response),
                    None => return Poll::Pending,
                },
                // Polled after completion: a future that finished stays pending.
                StateProj::Done => return Poll::Pending,
            };
            let mut response = match next {
                Step::Ready(response) => response,
                Step::Page(held, None) => this.glue.page(this.exchange, held, None),
                Step::Page(held, Some(detail)) => {
                    // This drops the application's future.
                    this.state.set(State::ReadingDetail {
                        detail,
                        held: Some(held),
                    });
                    continue;
                }
            };
            // The application's future (a panicked one too) is dropped before the
            // request finishes, so spans that close as it drops still count.
            this.state.set(State::Done);
            if let Some(id) = this.exchange.finish(G::status(&response)) {
                this.glue.set_request_id(&mut response, id);
            }
            return Poll::Ready(Ok(response));
        }
    }
}

pin_project_lite::pin_project! {
    /// What both adapters' services return: the request's lifecycle around the
    /// application, or an answer made beside it (the dashboard's), which is never
    /// recorded.
    pub struct AdapterFuture<F, G: ResponseGlue, A> {
        #[pin]
        inner: Either<F, G, A>,
    }
}

pin_project_lite::pin_project! {
    #[project = EitherProj]
    enum Either<F, G: ResponseGlue, A> {
        Exchange { #[pin] future: ExchangeFuture<F, G> },
        Beside { #[pin] future: A },
    }
}

impl<F, G: ResponseGlue, A> AdapterFuture<F, G, A> {
    /// The request's lifecycle around the application.
    pub fn exchange(future: ExchangeFuture<F, G>) -> Self {
        AdapterFuture {
            inner: Either::Exchange { future },
        }
    }

    /// An answer made beside the application, outside any lifecycle.
    pub fn beside(future: A) -> Self {
        AdapterFuture {
            inner: Either::Beside { future },
        }
    }
}

impl<F, G: ResponseGlue, A> fmt::Debug for AdapterFuture<F, G, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, G, A, E> Future for AdapterFuture<F, G, A>
where
    F: Future<Output = Result<G::Inner, E>>,
    G: FailedGlue<E>,
    A: Future<Output = G::Response>,
{
    type Output = Result<G::Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            EitherProj::Exchange { future } => future.poll(cx),
            EitherProj::Beside { future } => future.poll(cx).map(Ok),
        }
    }
}
