//! The service the middleware wraps around the app, and its response future.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, EitherBody, MessageBody, to_bytes_limited};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode, Version};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
// Named for what it is here: actix has an `HttpRequest` of its own.
use backstop_core::adapter::HttpRequest as RequestCopy;
use backstop_core::adapter::{
    FlatRequest, MAX_DETAIL_BYTES, PageDecision, REPLACED_HEADERS, new_request_id_bytes,
    status_event, version_name,
};
use backstop_core::{EventId, RequestScope, SpanStatus};
use backstop_pages::{DebugDetails, PageContext, PageFormat};

use crate::middleware::Shared;

/// The response body: the app's, untouched, or a page.
pub type BackstopBody<B> = EitherBody<B>;

/// The service [`Backstop`](crate::Backstop) wraps around the app.
pub struct BackstopMiddleware<S> {
    pub(crate) service: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) routes: StaticRoutes,
}

/// The paths of the app's static routes (those whose pattern is the path itself), as
/// met. actix finds a request's route pattern by trying every resource in turn, and
/// the middleware runs before routing, where nothing cheaper is available: that walk
/// cost a request more than the rest of its start. A static route's path is its
/// pattern, so it is looked up here instead; a dynamic route's paths (`/users/7`) are
/// unbounded and are walked each time. One set per app instance (per worker thread),
/// bounded by the app's static routes (and [`StaticRoutes::MAX`]).
#[derive(Default)]
pub(crate) struct StaticRoutes {
    paths: std::cell::RefCell<hashbrown::HashSet<Rc<str>>>,
}

impl StaticRoutes {
    const MAX: usize = 4096;

    fn route(&self, request: &ServiceRequest) -> Option<RouteName> {
        self.route_with(request.path(), || request.match_pattern())
    }

    /// The route of `path`, asking `match_pattern` only for a path not known static.
    fn route_with(
        &self,
        path: &str,
        match_pattern: impl FnOnce() -> Option<String>,
    ) -> Option<RouteName> {
        if let Some(known) = self.paths.borrow().get(path) {
            return Some(RouteName::Static(known.clone()));
        }
        let pattern = match_pattern()?;
        if pattern == path {
            let mut paths = self.paths.borrow_mut();
            if paths.len() < Self::MAX {
                let path: Rc<str> = Rc::from(path);
                paths.insert(path.clone());
                return Some(RouteName::Static(path));
            }
        }
        Some(RouteName::Matched(pattern))
    }
}

/// A request's route pattern.
enum RouteName {
    /// A static route's, shared.
    Static(Rc<str>),
    Matched(String),
}

impl std::ops::Deref for RouteName {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            RouteName::Static(path) => path,
            RouteName::Matched(pattern) => pattern,
        }
    }
}

impl<S> std::fmt::Debug for BackstopMiddleware<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackstopMiddleware")
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// What the response side needs to know about the request: its scope (which keeps the
/// copy of its facts the request context is built from), its id and route. The request
/// itself cannot be kept: actix routes by taking the only reference to it.
struct RequestInfo {
    /// Always there, but while a poll has moved it into the thread's current slot.
    scope: Option<Arc<RequestScope>>,
    /// The id the response carries (the request's own, or a new one).
    request_id: HeaderValue,
    /// The matched route pattern.
    route: Option<RouteName>,
    /// For a stand-in request, when the app took the real one (see
    /// `detached_request`). The rest of the request's facts are in the scope.
    version: Version,
    peer: Option<SocketAddr>,
}

impl RequestInfo {
    fn scope(&self) -> &Arc<RequestScope> {
        self.scope
            .as_ref()
            .expect("the scope is back in its slot after each poll")
    }

    /// The request's facts (URI, headers), which the scope keeps.
    fn http(&self) -> &RequestCopy {
        self.scope()
            .http_request()
            .expect("the middleware starts every scope with the request's facts")
    }
}

impl<S, B> Service<ServiceRequest> for BackstopMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BackstopBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future, B>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        let mut info = start(&self.shared, &self.routes, &mut request);
        let called = {
            let _entered = RequestScope::enter_moved(&mut info.scope);
            catch_unwind(AssertUnwindSafe(|| self.service.call(request)))
        };
        let state = match called {
            Ok(future) => State::Running { future },
            Err(payload) => State::Ready {
                response: Some(panic_response(&self.shared, &info, &*payload)),
            },
        };
        ResponseFuture {
            state,
            info: Some(info),
            shared: self.shared.clone(),
        }
    }
}

/// Opens the request's scope: names it, continues the trace, decides sampling, and
/// leaves the request context to be built on the worker if a record needs it.
fn start(shared: &Shared, routes: &StaticRoutes, request: &mut ServiceRequest) -> RequestInfo {
    let http = &shared.http;
    let client = &shared.client;
    let route = routes.route(request);
    // One buffer, one allocation: a transaction carries a copy of it to the worker,
    // and this one is freed here once the response is out.
    let uri = request.uri();
    let (mut flat, found) = FlatRequest::at_start(
        uri.scheme_str(),
        uri.authority().map(|a| a.as_str()),
        uri.path_and_query().map(|p| p.as_str()),
        shared.request_id_header.as_str(),
        || {
            request
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes()))
        },
    );
    let trace = found.trace();
    // Reuse a sane incoming id (the request's own header value, not a copy);
    // otherwise make one.
    let request_id = found
        .request_id()
        .and_then(|_| request.headers().get(&shared.request_id_header).cloned())
        .unwrap_or_else(|| {
            HeaderValue::from_maybe_shared(new_request_id_bytes())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
        });
    flat.set_request_id(request_id.as_bytes());
    let headers = request.headers();
    let peer = request.peer_addr();
    let client_ip = http.client_ip_with(peer.map(|p| p.ip()), || {
        (
            headers.get(X_FORWARDED_FOR).map(HeaderValue::as_bytes),
            headers.get(header::FORWARDED).map(HeaderValue::as_bytes),
        )
    });
    // The traces sampler alone needs `http` 1 headers: convert only for it.
    let sampler_headers = client.has_traces_sampler().then(|| http_headers(headers));
    let body = http
        .body_limit_with(|| headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes))
        .map(|limit| {
            let (payload, capture) = crate::body::tee(request.take_payload(), limit);
            request.set_payload(payload);
            capture
        });
    let method = request.method().clone();
    let version = request.version();
    let scope = RequestScope::http_builder(client, method.as_str(), route.as_deref())
        .op("http.server")
        .continue_trace(trace)
        .sampling_input(
            Some(method.as_str()),
            route.as_deref(),
            sampler_headers.as_ref(),
        )
        .http_request(RequestCopy {
            method: http_method(&method),
            scheme: if request.app_config().secure() {
                "https"
            } else {
                "http"
            },
            version: version_name(http_version(version)),
            client_ip,
            flat,
            body,
        })
        .start();
    if let Some(user_from) = &shared.user_from {
        // The team's code: a panic in it is contained, and the request goes on
        // without a user.
        let user = catch_unwind(AssertUnwindSafe(|| user_from(request.request())))
            .ok()
            .flatten();
        if let Some(user) = user {
            scope.configure(|s| s.set_user(Some(user)));
        }
    }
    // No copy goes into the request's extensions: the `BackstopScope` extractor finds
    // the scope bound to the handler's future, which saves an allocation per request.
    RequestInfo {
        scope: Some(scope),
        request_id,
        route,
        version,
        peer,
    }
}

/// actix-web 4 speaks `http` 0.2; core and pages speak `http` 1.
fn http_headers(headers: &HeaderMap) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn http_version(version: Version) -> http::Version {
    match version {
        Version::HTTP_09 => http::Version::HTTP_09,
        Version::HTTP_10 => http::Version::HTTP_10,
        Version::HTTP_2 => http::Version::HTTP_2,
        Version::HTTP_3 => http::Version::HTTP_3,
        _ => http::Version::HTTP_11,
    }
}

fn http_method(method: &Method) -> http::Method {
    http::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(http::Method::GET)
}

type Pending<B> = Pin<Box<dyn Future<Output = ServiceResponse<BackstopBody<B>>>>>;

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Running { #[pin] future: F },
        ReadingDetail { future: Pending<B> },
        Ready { response: Option<ServiceResponse<BackstopBody<B>>> },
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`BackstopMiddleware`].
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

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<BackstopBody<B>>, actix_web::Error>;

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
                    let next = match polled {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(Ok(response))) => on_response(
                            this.shared,
                            info,
                            response,
                            ServiceResponse::map_into_left_body,
                        ),
                        Ok(Poll::Ready(Err(error))) => {
                            // An inner middleware failed without a response; the server
                            // would answer with the error's own response. Make it here,
                            // so it is recorded and paged like any other.
                            let response = ServiceResponse::from_err(error, detached_request(info));
                            on_response(
                                this.shared,
                                info,
                                response,
                                ServiceResponse::map_into_right_body,
                            )
                        }
                        Err(payload) => State::Ready {
                            response: Some(panic_response(this.shared, info, &*payload)),
                        },
                    };
                    // This drops the app's future (a panicked one too).
                    this.state.set(next);
                }
                StateProj::ReadingDetail { future } => {
                    let response = std::task::ready!(future.as_mut().poll(cx));
                    this.state.set(State::Ready {
                        response: Some(response),
                    });
                }
                StateProj::Ready { response } => {
                    let mut response = response.take().expect("polled after completion");
                    if let Some(info) = this.info.take() {
                        info.scope().finish_http(response.status().as_u16());
                        response
                            .headers_mut()
                            .insert(this.shared.request_id_header.clone(), info.request_id);
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

/// The response is in: record it if it is an error, and decide whether the visitor
/// gets a page instead.
fn on_response<F, X, B>(
    shared: &Arc<Shared>,
    info: &RequestInfo,
    response: ServiceResponse<X>,
    keep: fn(ServiceResponse<X>) -> ServiceResponse<BackstopBody<B>>,
) -> State<F, B>
where
    X: MessageBody + 'static,
    B: MessageBody + 'static,
{
    let status = response.status();
    let code = status.as_u16();
    if code < 400 {
        return State::Ready {
            response: Some(keep(response)),
        };
    }
    let error = response.response().error();
    let event_id = shared.http.captures(&shared.client, code).then(|| {
        let event = match error {
            Some(error) => shared.errors.event(error, code),
            None => status_event(code, info.http().method.as_str(), info.route.as_deref()),
        };
        info.scope().capture_event(event)
    });
    let content_type = response.headers().get(header::CONTENT_TYPE);
    let body_len = match response.response().body().size() {
        BodySize::None => Some(0),
        BodySize::Sized(n) => Some(n),
        BodySize::Stream => None,
    };
    let decision =
        shared
            .http
            .page_decision(code, content_type.map(HeaderValue::as_bytes), body_len);
    if decision == PageDecision::Keep {
        return State::Ready {
            response: Some(keep(response)),
        };
    }
    let mut context = page_context(info, event_id);
    if shared.pages.is_debug()
        && let Some(error) = error
    {
        let mut details = DebugDetails::new(error.to_string());
        if let Some(error) = shared.errors.as_std(error) {
            details = details.with_chain_of(error);
        }
        context = context.with_debug(details);
    }
    let is_head = info.http().method == http::Method::HEAD;
    let format = page_format(info);
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    match decision {
        PageDecision::Replace {
            detail_from_body: true,
        } => {
            let shared = shared.clone();
            State::ReadingDetail {
                future: Box::pin(async move {
                    let detail = match to_bytes_limited(body, MAX_DETAIL_BYTES).await {
                        Ok(Ok(bytes)) => {
                            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
                            (!text.is_empty()).then_some(text)
                        }
                        // Too long or unreadable: the page goes without it.
                        _ => None,
                    };
                    let context = match detail {
                        Some(detail) => context.with_detail(detail),
                        None => context,
                    };
                    render(&shared, request, head, status, context, format, is_head)
                }),
            }
        }
        _ => {
            drop(body);
            State::Ready {
                response: Some(render(
                    shared, request, head, status, context, format, is_head,
                )),
            }
        }
    }
}

fn page_format(info: &RequestInfo) -> PageFormat {
    PageFormat::negotiate_str(
        info.http()
            .flat
            .header("accept")
            .and_then(|v| std::str::from_utf8(v).ok()),
    )
}

fn page_context(info: &RequestInfo, event_id: Option<EventId>) -> PageContext {
    let http = info.http();
    let context = PageContext::new(http.method.clone(), http.path_and_query());
    match event_id {
        Some(id) => context.with_event_id(id.to_string()),
        None => context,
    }
}

/// Renders the page into the original response's head, keeping its headers (cookies,
/// `Allow`, `Retry-After`, the team's own) except those that described its body, and
/// its error, which outer middleware may log.
fn render<B>(
    shared: &Shared,
    request: HttpRequest,
    mut head: HttpResponse<()>,
    status: StatusCode,
    context: PageContext,
    format: PageFormat,
    is_head: bool,
) -> ServiceResponse<BackstopBody<B>> {
    let status = http::StatusCode::from_u16(status.as_u16())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut status_headers = http::HeaderMap::new();
    for name in backstop_pages::status_headers(status) {
        for value in head.headers().get_all(name.as_str()) {
            if let Ok(value) = http::HeaderValue::from_bytes(value.as_bytes()) {
                status_headers.append(name.clone(), value);
            }
        }
    }
    let context = context.with_headers(status_headers);
    let page = shared.pages.render_as(status, &context, format, is_head);
    let (parts, body) = page.into_parts();
    let headers = head.headers_mut();
    for name in REPLACED_HEADERS {
        headers.remove(*name);
    }
    for name in parts.headers.keys() {
        headers.remove(name.as_str());
    }
    for (name, value) in &parts.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    *head.status_mut() =
        StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let response = head.set_body(body).map_into_boxed_body();
    ServiceResponse::new(request, response).map_into_right_body()
}

/// A panic was caught: record it, and answer with the 500 page.
fn panic_response<B>(
    shared: &Shared,
    info: &RequestInfo,
    payload: &(dyn std::any::Any + Send),
) -> ServiceResponse<BackstopBody<B>> {
    let debug = shared.pages.is_debug();
    let (id, details) = info.scope().capture_panic_detailed(payload, debug);
    let mut context = page_context(info, Some(id));
    if debug {
        context = context.with_debug(DebugDetails::from_panic(&details));
    }
    let head = HttpResponse::new(StatusCode::INTERNAL_SERVER_ERROR).drop_body();
    render(
        shared,
        detached_request(info),
        head,
        StatusCode::INTERNAL_SERVER_ERROR,
        context,
        page_format(info),
        info.http().method == http::Method::HEAD,
    )
}

/// A stand-in for the request, for a response made after the app took the real one
/// (a panic, an error instead of a response). actix's `HttpRequest` has no public
/// constructor but its test builder's; this path is rare and not hot.
fn detached_request(info: &RequestInfo) -> HttpRequest {
    let mut request = actix_web::test::TestRequest::default()
        .method(Method::from_bytes(info.http().method.as_str().as_bytes()).unwrap_or_default())
        .uri(info.http().flat.uri())
        .version(info.version);
    if let Some(peer) = info.peer {
        request = request.peer_addr(peer);
    }
    request.to_http_request()
}

#[cfg(test)]
mod tests {
    use super::StaticRoutes;

    #[test]
    fn static_routes_are_remembered_and_dynamic_ones_matched_each_time() {
        let routes = StaticRoutes::default();
        let first = routes.route_with("/hello", || Some("/hello".into()));
        assert_eq!(first.as_deref(), Some("/hello"));
        let again = routes.route_with("/hello", || {
            panic!("a known static route is not matched again")
        });
        assert_eq!(again.as_deref(), Some("/hello"));
        for path in ["/users/7", "/users/8", "/users/7"] {
            let mut asked = false;
            let route = routes.route_with(path, || {
                asked = true;
                Some("/users/{id}".into())
            });
            assert_eq!(route.as_deref(), Some("/users/{id}"));
            assert!(asked, "{path} is matched each time");
        }
        assert_eq!(routes.route_with("/nope", || None).as_deref(), None);
        assert_eq!(
            routes.paths.borrow().len(),
            1,
            "only the static route is kept"
        );
    }
}
