//! The service the middleware wraps around the app, and its response future: the
//! translation between actix's types and core's request lifecycle.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::{BodySize, EitherBody, MessageBody, to_bytes_limited};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode, Version};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use backstop_core::EventId;
use backstop_core::adapter::{
    AdapterFuture, Exchange, ExchangeFuture, FailedGlue, MAX_DETAIL_BYTES, RequestHead,
    ResponseGlue, Step, Verdict, detail_text, header_map, replaced_by_page,
};
use backstop_core::adapter::{RouteName, StaticRoutes};

use crate::middleware::Shared;

/// The response body: the app's, untouched, or a page.
pub type BackstopBody<B> = EitherBody<B>;

/// The service [`Backstop`](crate::Backstop) wraps around the app.
pub struct BackstopMiddleware<S> {
    pub(crate) service: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) routes: StaticRoutes,
}

impl<S> std::fmt::Debug for BackstopMiddleware<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackstopMiddleware")
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
        let shared = &self.shared;
        let config = &shared.config;
        // The dashboard answers its own paths before the lifecycle starts: they are
        // never recorded.
        #[cfg(feature = "dashboard")]
        if let Some(dashboard) = config.mount().claims(request.path()) {
            let head = Head {
                request: &request,
                id_header: &shared.request_id_header,
            };
            let (client_ip, https) = config.client_of(&head);
            let answer = dashboard_answer(dashboard.clone(), request, client_ip, https);
            return ResponseFuture::beside(Box::pin(answer));
        }
        let route = self
            .routes
            .route(request.path(), || request.match_pattern());
        let headers = request.headers();
        let body = config
            .http_options()
            .body_limit_with(|| headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes))
            .map(|limit| {
                let (payload, capture) = crate::body::tee(request.take_payload(), limit);
                request.set_payload(payload);
                capture
            });
        let head = Head {
            request: &request,
            id_header: &shared.request_id_header,
        };
        // No copy goes into the request's extensions: the `BackstopScope` extractor
        // finds the scope bound to the handler's future.
        let exchange = Exchange::start(config, &head, request.request(), route, body);
        let glue = Glue {
            shared: shared.clone(),
            version: request.version(),
            peer: request.peer_addr(),
            body: std::marker::PhantomData,
        };
        let call = || self.service.call(request);
        ResponseFuture::exchange(ExchangeFuture::call(exchange, glue, call))
    }
}

/// The request as core's lifecycle reads it.
struct Head<'a> {
    request: &'a ServiceRequest,
    id_header: &'a HeaderName,
}

impl RequestHead for Head<'_> {
    type HeaderValue = HeaderValue;

    fn method(&self) -> http::Method {
        http_method(self.request.method())
    }

    fn uri(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        let uri = self.request.uri();
        let authority = uri.authority().map(|a| a.as_str());
        (
            uri.scheme_str(),
            authority,
            uri.path_and_query().map(|p| p.as_str()),
        )
    }

    fn version(&self) -> http::Version {
        http_version(self.request.version())
    }

    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        pairs(self.request.headers())
    }

    fn header(&self, name: &'static str) -> Option<&[u8]> {
        self.request.headers().get(name).map(HeaderValue::as_bytes)
    }

    fn incoming_request_id(&self) -> Option<HeaderValue> {
        self.request.headers().get(self.id_header).cloned()
    }

    fn new_request_id(id: bytes::Bytes) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(id).ok()
    }

    fn peer(&self) -> Option<std::net::IpAddr> {
        self.request.peer_addr().map(|peer| peer.ip())
    }

    /// A server bound with TLS (`bind_rustls`, `bind_openssl`) says so in its config.
    fn is_tls(&self) -> bool {
        self.request.app_config().secure()
    }
}

/// actix-web 4 speaks `http` 0.2; core and pages speak `http` 1. Core reads headers
/// as pairs.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &[u8])> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
}

/// Appends `http` 1 headers to actix's map.
fn append_headers(headers: &mut HeaderMap, from: &http::HeaderMap) {
    for (name, value) in from {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
}

fn actix_status(status: http::StatusCode) -> StatusCode {
    StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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

/// A dashboard page, made off the async threads.
#[doc(hidden)]
pub type DashboardFuture<B> = Pin<Box<dyn Future<Output = ServiceResponse<BackstopBody<B>>>>>;

/// The response future of [`BackstopMiddleware`]: the request's lifecycle, or a
/// dashboard page.
pub type ResponseFuture<F, B> = AdapterFuture<F, Glue<B>, DashboardFuture<B>>;

/// Reads the request's body and has the dashboard answer it off the async threads.
#[cfg(feature = "dashboard")]
async fn dashboard_answer<B>(
    dashboard: backstop_dashboard::Dashboard,
    request: ServiceRequest,
    client_ip: Option<std::net::IpAddr>,
    https: bool,
) -> ServiceResponse<BackstopBody<B>> {
    use actix_web::FromRequest;
    use backstop_core::adapter::request_from;

    let (http_request, mut payload) = request.into_parts();
    let body = match bytes::Bytes::from_request(&http_request, &mut payload).await {
        Ok(body) => body,
        Err(error) => return ServiceResponse::from_err(error, http_request).map_into_right_body(),
    };
    let (method, uri) = (
        http_request.method().as_str(),
        http_request.uri().to_string(),
    );
    let headers = pairs(http_request.headers());
    let Some(converted) = request_from(method, &uri, headers, body) else {
        let response = HttpResponse::NotFound().finish().map_into_boxed_body();
        return ServiceResponse::new(http_request, response).map_into_right_body();
    };
    let answer = backstop_dashboard::answer_blocking(dashboard, converted, client_ip, https);
    let (parts, body) = answer.await.into_parts();
    let mut response = HttpResponse::with_body(actix_status(parts.status), body);
    append_headers(response.headers_mut(), &parts.headers);
    ServiceResponse::new(http_request, response.map_into_boxed_body()).map_into_right_body()
}

/// actix's side of the lifecycle's response future.
#[doc(hidden)]
pub struct Glue<B> {
    shared: Arc<Shared>,
    /// For a stand-in request, when the app took the real one (see
    /// `detached_request`). The rest of the request's facts are in the scope.
    version: Version,
    peer: Option<SocketAddr>,
    body: std::marker::PhantomData<fn() -> B>,
}

type Ex = Exchange<HeaderValue, RouteName>;

/// What a page waiting for its detail keeps of the response: the request and the
/// response's head, whose headers and error stay.
#[doc(hidden)]
pub struct Held {
    request: HttpRequest,
    head: HttpResponse<()>,
    event_id: Option<EventId>,
}

impl<B: MessageBody + 'static> Glue<B> {
    /// The response is in: record it if it is an error, and decide whether the
    /// visitor gets a page instead. `keep` sends it as it is.
    fn respond_with<X: MessageBody + 'static>(
        &self,
        exchange: &Ex,
        response: ServiceResponse<X>,
        keep: fn(ServiceResponse<X>) -> ServiceResponse<BackstopBody<B>>,
    ) -> Step<Self> {
        let code = response.status().as_u16();
        if code < 400 {
            return Step::Ready(keep(response));
        }
        let error = response.response().error();
        let body_len = match response.response().body().size() {
            BodySize::None => Some(0),
            BodySize::Sized(n) => Some(n),
            BodySize::Stream => None,
        };
        let verdict = exchange.verdict(
            &self.shared.config,
            code,
            |code| error.map(|error| self.shared.errors.event(error, code)),
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
            body_len,
        );
        let Verdict::Page {
            event_id,
            detail_from_body,
        } = verdict
        else {
            return Step::Ready(keep(response));
        };
        let (request, response) = response.into_parts();
        let (head, body) = response.into_parts();
        let read = detail_from_body.then(|| {
            // Too long or unreadable: the page goes without it.
            let read = async move {
                detail_text(&to_bytes_limited(body, MAX_DETAIL_BYTES).await.ok()?.ok()?)
            };
            Box::pin(read) as <Self as ResponseGlue>::Detail
        });
        Step::Page(
            Held {
                request,
                head,
                event_id,
            },
            read,
        )
    }
}

/// Writes a rendered page into a response head.
fn into_head<B>(
    request: HttpRequest,
    mut head: HttpResponse<()>,
    page: http::Response<String>,
) -> ServiceResponse<BackstopBody<B>> {
    let (parts, body) = page.into_parts();
    let headers = head.headers_mut();
    for name in replaced_by_page(&parts.headers) {
        headers.remove(name);
    }
    append_headers(headers, &parts.headers);
    *head.status_mut() = actix_status(parts.status);
    let response = head.set_body(body).map_into_boxed_body();
    ServiceResponse::new(request, response).map_into_right_body()
}

impl<B: MessageBody + 'static> ResponseGlue for Glue<B> {
    type Id = HeaderValue;
    type Route = RouteName;
    type Inner = ServiceResponse<B>;
    type Response = ServiceResponse<BackstopBody<B>>;
    type Detail = Pin<Box<dyn Future<Output = Option<String>>>>;
    type Held = Held;

    fn respond(&self, exchange: &Ex, response: ServiceResponse<B>) -> Step<Self> {
        self.respond_with(exchange, response, ServiceResponse::map_into_left_body)
    }

    fn panicked(&self, exchange: &Ex, payload: &(dyn Any + Send)) -> Self::Response {
        let page = exchange.panic_page(&self.shared.config, payload);
        let head = HttpResponse::new(StatusCode::INTERNAL_SERVER_ERROR).drop_body();
        into_head(self.detached_request(exchange), head, page)
    }

    /// The page, in the original response's head: its headers (cookies, `Allow`,
    /// `Retry-After`, the team's own) but those that described its body, and its
    /// error, which outer middleware may log.
    fn page(&self, exchange: &Ex, held: Held, detail: Option<String>) -> Self::Response {
        let Held {
            request,
            head,
            event_id,
        } = held;
        let status = http::StatusCode::from_u16(head.status().as_u16())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let kept = backstop_pages::status_headers(status);
        let kept = pairs(head.headers()).filter(|(name, _)| kept.iter().any(|k| k == name));
        let status_headers = header_map(kept);
        let debug = head
            .error()
            .map(|error| self.shared.errors.page_debug(error));
        let page = exchange.page(
            &self.shared.config,
            status,
            event_id,
            detail,
            debug,
            &status_headers,
        );
        into_head(request, head, page.unwrap_or_default())
    }

    fn status(response: &Self::Response) -> u16 {
        response.status().as_u16()
    }

    fn set_request_id(&self, response: &mut Self::Response, id: HeaderValue) {
        let name = self.shared.request_id_header.clone();
        response.headers_mut().insert(name, id);
    }
}

impl<B: MessageBody + 'static> FailedGlue<actix_web::Error> for Glue<B> {
    /// An inner middleware failed without a response; the server would answer with
    /// the error's own response. Make it here, so it is recorded and paged like any
    /// other.
    fn failed(
        &self,
        exchange: &Ex,
        error: actix_web::Error,
    ) -> Result<Step<Self>, actix_web::Error> {
        let response = ServiceResponse::from_err(error, self.detached_request(exchange));
        Ok(self.respond_with(exchange, response, ServiceResponse::map_into_right_body))
    }
}

impl<B> Glue<B> {
    /// A stand-in for the request, for a response made after the app took the real
    /// one (a panic, an error instead of a response). actix's `HttpRequest` has no
    /// public constructor but its test builder's; this path is rare and not hot.
    fn detached_request(&self, exchange: &Ex) -> HttpRequest {
        let mut request = actix_web::test::TestRequest::default().version(self.version);
        if let Some(http) = exchange.request() {
            let method = Method::from_bytes(http.method.as_str().as_bytes()).unwrap_or_default();
            request = request.method(method).uri(http.flat.uri());
        }
        if let Some(peer) = self.peer {
            request = request.peer_addr(peer);
        }
        request.to_http_request()
    }
}
