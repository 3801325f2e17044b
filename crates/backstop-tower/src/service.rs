//! The service the layer wraps around the application, its response future and body.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use backstop_core::adapter::{
    FlatRequest, HttpRequest, MAX_DETAIL_BYTES, PageDecision, REPLACED_HEADERS,
    error_response_event, status_event, version_name,
};
use backstop_core::{EventId, RequestScope, SpanStatus};
use backstop_pages::{DebugDetails, PageContext};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::CapturedError;
use crate::layer::Shared;

/// An error from the response body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service [`BackstopLayer`](crate::BackstopLayer) makes.
#[derive(Clone, Debug)]
pub struct BackstopService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

/// What the response side needs to know about the request. Its facts (method, URI,
/// headers) are in the scope (see `RequestScope::http_request`).
struct RequestInfo {
    /// Always there, but while a poll has moved it into the thread's current slot.
    scope: Option<Arc<RequestScope>>,
    route: RouteName,
    /// The id the response carries (the request's own, or a new one).
    request_id: HeaderValue,
}

/// What a page's rendering reads of the request: the format asked for, and whether
/// the response has a body at all (on the error path only).
struct Asked {
    accept: Option<HeaderValue>,
    head: bool,
}

impl Asked {
    fn of(http: &HttpRequest) -> Self {
        Asked {
            accept: http
                .flat
                .header("accept")
                .and_then(|v| HeaderValue::from_bytes(v).ok()),
            head: http.method == Method::HEAD,
        }
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

impl RequestInfo {
    fn scope(&self) -> &Arc<RequestScope> {
        self.scope
            .as_ref()
            .expect("the scope is back in its slot after each poll")
    }

    fn http(&self) -> &HttpRequest {
        self.scope()
            .http_request()
            .expect("the layer starts every scope with the request's facts")
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for BackstopService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<BackstopBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = self.shared.clone();
        let (mut parts, body) = request.into_parts();
        let limit = shared.http.body_limit_with(|| {
            parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(HeaderValue::as_bytes)
        });
        let (body, captured) = match limit {
            Some(limit) => crate::capture::tee(body, limit),
            None => (body, None),
        };
        let mut info = start(&shared, &mut parts, captured);
        let request = Request::from_parts(parts, body);
        let called = {
            let _entered = RequestScope::enter_moved(&mut info.scope);
            catch_unwind(AssertUnwindSafe(|| self.inner.call(request)))
        };
        match called {
            Ok(future) => ResponseFuture {
                state: State::Running { future },
                info: Some(info),
                shared,
            },
            Err(payload) => {
                let response = panic_response(&shared, &info, &*payload);
                ResponseFuture {
                    state: State::Ready {
                        response: Some(response),
                    },
                    info: Some(info),
                    shared,
                }
            }
        }
    }
}

/// Opens the request's scope: names it, continues the trace, decides sampling, and
/// leaves the request context to be built on the worker if a record needs it.
fn start(
    shared: &Shared,
    request: &mut http::request::Parts,
    body: Option<crate::capture::Captured>,
) -> RequestInfo {
    let http = &shared.http;
    let headers = &request.headers;
    let route = matched_route(request).map_or_else(RouteName::none, Route::into_name);
    let method = &request.method;
    let id_header = http.request_id_header_name();
    let uri = &request.uri;
    let (mut flat, found) = FlatRequest::at_start(
        uri.scheme_str(),
        uri.authority().map(|a| a.as_str()),
        uri.path_and_query().map(|p| p.as_str()),
        id_header.as_str(),
        || headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    let trace = found.trace();
    // Reuse a sane incoming id (the request's own header value, not a copy);
    // otherwise make one.
    let request_id = found
        .request_id()
        .and_then(|_| headers.get(id_header).cloned())
        .unwrap_or_else(|| {
            HeaderValue::from_maybe_shared(backstop_core::adapter::new_request_id_bytes())
                .expect("hex digits are a valid header value")
        });
    flat.set_request_id(request_id.as_bytes());
    let client_ip = http.client_ip_with(peer_ip(request), || {
        (
            headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes),
            headers.get(&FORWARDED).map(HeaderValue::as_bytes),
        )
    });
    let client = &shared.client;
    let sampler_headers = client.has_traces_sampler().then_some(headers);
    let scope = RequestScope::http_builder(client, method.as_str(), route.as_deref())
        .op("http.server")
        .continue_trace(trace)
        .sampling_input(Some(method.as_str()), route.as_deref(), sampler_headers)
        .http_request(HttpRequest {
            method: method.clone(),
            scheme: "http",
            version: version_name(request.version),
            client_ip,
            flat,
            body,
        })
        .start();
    if let Some(user_from) = &shared.user_from {
        // The team's code: a panic in it is contained, and the request goes on
        // without a user.
        let user = catch_unwind(AssertUnwindSafe(|| user_from(request)))
            .ok()
            .flatten();
        if let Some(user) = user {
            scope.configure(|s| s.set_user(Some(user)));
        }
    }
    RequestInfo {
        scope: Some(scope),
        route,
        request_id,
    }
}

/// The matched route, borrowed from axum's `MatchedPath` (an `Arc<str>` inside).
#[cfg(feature = "axum")]
struct Route(axum::extract::MatchedPath);

#[cfg(feature = "axum")]
impl Route {
    fn into_name(self) -> RouteName {
        RouteName(Some(self.0))
    }
}

/// The route kept for the response side, without copying it.
#[cfg(feature = "axum")]
#[derive(Clone)]
struct RouteName(Option<axum::extract::MatchedPath>);

#[cfg(feature = "axum")]
impl RouteName {
    fn none() -> Self {
        RouteName(None)
    }

    fn as_deref(&self) -> Option<&str> {
        self.0.as_ref().map(|m| m.as_str())
    }
}

#[cfg(feature = "axum")]
fn matched_route(request: &http::request::Parts) -> Option<Route> {
    request
        .extensions
        .get::<axum::extract::MatchedPath>()
        .cloned()
        .map(Route)
}

#[cfg(not(feature = "axum"))]
struct Route(std::convert::Infallible);

#[cfg(not(feature = "axum"))]
impl Route {
    fn into_name(self) -> RouteName {
        match self.0 {}
    }
}

#[cfg(not(feature = "axum"))]
#[derive(Clone)]
struct RouteName;

#[cfg(not(feature = "axum"))]
impl RouteName {
    fn none() -> Self {
        RouteName
    }

    fn as_deref(&self) -> Option<&str> {
        None
    }
}

#[cfg(not(feature = "axum"))]
fn matched_route(_request: &http::request::Parts) -> Option<Route> {
    None
}

#[cfg(feature = "axum")]
fn peer_ip(request: &http::request::Parts) -> Option<std::net::IpAddr> {
    request
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

#[cfg(not(feature = "axum"))]
fn peer_ip(_request: &http::request::Parts) -> Option<std::net::IpAddr> {
    None
}

pin_project_lite::pin_project! {
    /// The response future of [`BackstopService`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
        info: Option<RequestInfo>,
        shared: Arc<Shared>,
    }

    impl<F, B> PinnedDrop for ResponseFuture<F, B> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before it finished: the client went away. The transaction ends
            // as aborted; nothing stays behind.
            if let Some(info) = this.project().info.take() {
                info.scope().finish(SpanStatus::Aborted);
            }
        }
    }
}

type Pending<B> = Pin<Box<dyn Future<Output = Response<BackstopBody<B>>> + Send>>;

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Running { #[pin] future: F },
        ReadingDetail { future: Pending<B> },
        Ready { response: Option<Response<BackstopBody<B>>> },
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<BackstopBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Running { future } => {
                    let info = this.info.as_mut().expect("polled after completion");
                    let polled = {
                        let _entered = RequestScope::enter_moved(&mut info.scope);
                        catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
                    };
                    let response = match polled {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(Err(error))) => {
                            // The service failed without a response (not an HTTP
                            // status): the server decides what the client sees.
                            if let Some(info) = this.info.take() {
                                info.scope().finish(SpanStatus::InternalError);
                            }
                            return Poll::Ready(Err(error));
                        }
                        Ok(Poll::Ready(Ok(response))) => response,
                        Err(payload) => {
                            let response = panic_response(this.shared, info, &*payload);
                            this.state.set(State::Ready {
                                response: Some(response),
                            });
                            continue;
                        }
                    };
                    match on_response(this.shared, info, response) {
                        Outcome::Done(response) => {
                            this.state.set(State::Ready {
                                response: Some(response),
                            });
                        }
                        Outcome::ReadDetail(future) => {
                            this.state.set(State::ReadingDetail { future });
                        }
                    }
                }
                StateProj::ReadingDetail { future } => {
                    let response = ready!(future.as_mut().poll(cx));
                    this.state.set(State::Ready {
                        response: Some(response),
                    });
                }
                StateProj::Ready { response } => {
                    let mut response = response.take().expect("polled after completion");
                    if let Some(info) = this.info.take() {
                        info.scope().finish_http(response.status().as_u16());
                        response.headers_mut().insert(
                            this.shared.http.request_id_header_name().clone(),
                            info.request_id,
                        );
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

enum Outcome<B> {
    Done(Response<BackstopBody<B>>),
    ReadDetail(Pending<B>),
}

/// The response is in: record it if it is an error, and decide whether the visitor
/// gets a page instead.
fn on_response<B>(shared: &Arc<Shared>, info: &RequestInfo, response: Response<B>) -> Outcome<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let status = response.status();
    if status.as_u16() < 400 {
        return Outcome::Done(response.map(BackstopBody::inner));
    }
    let code = status.as_u16();
    let error = response.extensions().get::<CapturedError>().cloned();
    let event_id = shared.http.captures(&shared.client, code).then(|| {
        let event = match &error {
            Some(error) => error_response_event(&*error.0, code),
            None => status_event(code, info.http().method.as_str(), info.route.as_deref()),
        };
        info.scope().capture_event(event)
    });
    let content_type = response.headers().get(http::header::CONTENT_TYPE);
    let decision = shared.http.page_decision(
        code,
        content_type.map(HeaderValue::as_bytes),
        response.body().size_hint().exact(),
    );
    let PageDecision::Replace { detail_from_body } = decision else {
        return Outcome::Done(response.map(BackstopBody::inner));
    };
    // Only a response that becomes a page needs the page's context.
    let mut context = page_context(info, event_id);
    if shared.pages.is_debug()
        && let Some(error) = &error
    {
        context =
            context.with_debug(DebugDetails::new(error.0.to_string()).with_chain_of(&*error.0));
    }
    match detail_from_body {
        false => Outcome::Done(page(shared, info, status, context, response.into_parts().0)),
        true => {
            let shared = shared.clone();
            let asked = Asked::of(info.http());
            let (parts, body) = response.into_parts();
            Outcome::ReadDetail(Box::pin(async move {
                let limited = http_body_util::Limited::new(body, MAX_DETAIL_BYTES);
                let detail = match limited.collect().await {
                    Ok(collected) => {
                        let bytes = collected.to_bytes();
                        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
                        (!text.is_empty()).then_some(text)
                    }
                    // Too long or unreadable: the page goes without it.
                    Err(_) => None,
                };
                let context = match detail {
                    Some(detail) => context.with_detail(detail),
                    None => context,
                };
                render(&shared, &asked, status, &context, parts)
            }))
        }
    }
}

fn page_context(info: &RequestInfo, event_id: Option<EventId>) -> PageContext {
    let http = info.http();
    let context = PageContext::new(http.method.clone(), http.path_and_query());
    match event_id {
        Some(id) => context.with_event_id(id.to_string()),
        None => context,
    }
}

fn page<B>(
    shared: &Shared,
    info: &RequestInfo,
    status: StatusCode,
    context: PageContext,
    parts: http::response::Parts,
) -> Response<BackstopBody<B>> {
    render(shared, &Asked::of(info.http()), status, &context, parts)
}

/// Renders the page, keeping the original response's headers except those that
/// described its body.
fn render<B>(
    shared: &Shared,
    asked: &Asked,
    status: StatusCode,
    context: &PageContext,
    original: http::response::Parts,
) -> Response<BackstopBody<B>> {
    let context = context.clone().with_headers(original.headers.clone());
    let page = shared
        .pages
        .render(status, &context, asked.accept.as_ref(), asked.head);
    let (mut parts, body) = page.into_parts();
    let page_headers = std::mem::take(&mut parts.headers);
    let mut headers = HeaderMap::with_capacity(original.headers.len() + page_headers.len());
    for (name, value) in &original.headers {
        if !REPLACED_HEADERS.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    for name in page_headers.keys() {
        headers.remove(name);
    }
    for (name, value) in &page_headers {
        headers.append(name.clone(), value.clone());
    }
    parts.headers = headers;
    parts.extensions = original.extensions;
    parts.version = original.version;
    Response::from_parts(parts, BackstopBody::full(Bytes::from(body)))
}

/// A panic was caught: record it, and answer with the 500 page.
fn panic_response<B>(
    shared: &Shared,
    info: &RequestInfo,
    payload: &(dyn std::any::Any + Send),
) -> Response<BackstopBody<B>> {
    let debug = shared.pages.is_debug();
    let (id, details) = info.scope().capture_panic_detailed(payload, debug);
    let mut context = page_context(info, Some(id));
    if debug {
        context = context.with_debug(DebugDetails::from_panic(&details));
    }
    let parts = Response::new(()).into_parts().0;
    render(
        shared,
        &Asked::of(info.http()),
        StatusCode::INTERNAL_SERVER_ERROR,
        &context,
        parts,
    )
}

pin_project_lite::pin_project! {
    /// The response body: the application's, untouched, or a page.
    pub struct BackstopBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Page { bytes: Option<Bytes> },
    }
}

impl<B> BackstopBody<B> {
    fn inner(body: B) -> Self {
        BackstopBody {
            kind: Kind::Inner { body },
        }
    }

    fn full(bytes: Bytes) -> Self {
        BackstopBody {
            kind: Kind::Page {
                bytes: (!bytes.is_empty()).then_some(bytes),
            },
        }
    }
}

impl<B> std::fmt::Debug for BackstopBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackstopBody")
    }
}

impl<B> Body for BackstopBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Page { bytes } => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Page { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Page { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
