//! The service the layer wraps around the application, its response future and body:
//! the translation between tower's types and core's request lifecycle.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use backstop_core::EventId;
use backstop_core::adapter::{
    AdapterFuture, Exchange, ExchangeFuture, FailedGlue, MAX_DETAIL_BYTES, PageDebug, RequestHead,
    ResponseGlue, Step, Verdict, detail_text, error_response_event, merge_page_headers,
};
use backstop_core::tower::BoxError;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::CapturedError;
use crate::layer::Config;

/// The service [`BackstopLayer`](crate::BackstopLayer) makes.
#[derive(Clone, Debug)]
pub struct BackstopService<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for BackstopService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
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
        let config = self.config.clone();
        let (parts, body) = request.into_parts();
        let id_header = config.http_options().request_id_header_name();
        let head = Head {
            parts: &parts,
            id_header,
        };
        // The dashboard answers its own paths before the lifecycle starts: they are
        // never recorded.
        #[cfg(feature = "dashboard")]
        if let Some(dashboard) = config.mount().claims(parts.uri.path()) {
            let (client_ip, https) = config.client_of(&head);
            let dashboard = dashboard.clone();
            return ResponseFuture::beside(Box::pin(async move {
                let body = body.collect().await.map(|body| body.to_bytes());
                let request = Request::from_parts(parts, body.unwrap_or_default());
                let answer =
                    backstop_dashboard::answer_blocking(dashboard, request, client_ip, https);
                answer.await.map(BackstopBody::full)
            }));
        }
        let limit = config.http_options().body_limit_with(|| {
            let content_type = parts.headers.get(http::header::CONTENT_TYPE);
            content_type.map(HeaderValue::as_bytes)
        });
        let (body, captured) = match limit {
            Some(limit) => crate::capture::tee(body, limit),
            None => (body, None),
        };
        let exchange = Exchange::start(&config, &head, &parts, matched_route(&parts), captured);
        let request = Request::from_parts(parts, body);
        let glue = Glue {
            config,
            body: PhantomData,
        };
        let inner = &mut self.inner;
        ResponseFuture::exchange(ExchangeFuture::call(exchange, glue, || inner.call(request)))
    }
}

/// The request as core's lifecycle reads it.
struct Head<'a> {
    parts: &'a http::request::Parts,
    id_header: &'a HeaderName,
}

impl RequestHead for Head<'_> {
    type HeaderValue = HeaderValue;

    fn method(&self) -> http::Method {
        self.parts.method.clone()
    }

    fn uri(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        let uri = &self.parts.uri;
        let path = uri.path_and_query().map(|p| p.as_str());
        (uri.scheme_str(), uri.authority().map(|a| a.as_str()), path)
    }

    fn version(&self) -> http::Version {
        self.parts.version
    }

    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
    }

    fn header(&self, name: &'static str) -> Option<&[u8]> {
        self.parts.headers.get(name).map(HeaderValue::as_bytes)
    }

    fn incoming_request_id(&self) -> Option<HeaderValue> {
        self.parts.headers.get(self.id_header).cloned()
    }

    fn new_request_id(id: Bytes) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(id).ok()
    }

    fn peer(&self) -> Option<std::net::IpAddr> {
        peer_ip(self.parts)
    }

    /// A server terminating TLS itself gives HTTP/2 requests an `https` URI.
    fn is_tls(&self) -> bool {
        self.parts.uri.scheme() == Some(&http::uri::Scheme::HTTPS)
    }

    fn sampler_headers(&self) -> Cow<'_, HeaderMap> {
        Cow::Borrowed(&self.parts.headers)
    }
}

/// The matched route, kept for the response side without copying it (axum's
/// `MatchedPath` is an `Arc<str>` inside).
#[cfg(feature = "axum")]
#[doc(hidden)]
pub struct Route(axum::extract::MatchedPath);

#[cfg(feature = "axum")]
impl AsRef<str> for Route {
    fn as_ref(&self) -> &str {
        self.0.as_str()
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

/// Without axum, no route is known.
#[cfg(not(feature = "axum"))]
#[doc(hidden)]
pub type Route = &'static str;

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

/// The response future of [`BackstopService`]: the request's lifecycle, or a dashboard
/// page.
pub type ResponseFuture<F, B> = AdapterFuture<F, Glue<B>, DashboardFuture<B>>;

/// A dashboard page, made off the async threads.
#[doc(hidden)]
pub type DashboardFuture<B> = Pin<Box<dyn Future<Output = Response<BackstopBody<B>>> + Send>>;

/// tower's side of the lifecycle's response future.
#[doc(hidden)]
pub struct Glue<B> {
    config: Arc<Config>,
    body: PhantomData<fn() -> B>,
}

/// What a page waiting for its detail keeps of the response.
#[doc(hidden)]
pub struct Held {
    parts: http::response::Parts,
    error: Option<CapturedError>,
    event_id: Option<EventId>,
}

impl<B> ResponseGlue for Glue<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Id = HeaderValue;
    type Route = Route;
    type Inner = Response<B>;
    type Response = Response<BackstopBody<B>>;
    type Detail = Pin<Box<dyn Future<Output = Option<String>> + Send>>;
    type Held = Held;

    fn respond(
        &self,
        exchange: &Exchange<HeaderValue, Route>,
        response: Response<B>,
    ) -> Step<Self> {
        let code = response.status().as_u16();
        if code < 400 {
            return Step::Ready(response.map(BackstopBody::inner));
        }
        let error = response.extensions().get::<CapturedError>().cloned();
        let verdict = exchange.verdict(
            &self.config,
            code,
            |code| error.as_ref().map(|e| error_response_event(&*e.0, code)),
            response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
            response.body().size_hint().exact(),
        );
        let Verdict::Page {
            event_id,
            detail_from_body,
        } = verdict
        else {
            return Step::Ready(response.map(BackstopBody::inner));
        };
        let (parts, body) = response.into_parts();
        let read = detail_from_body.then(|| {
            let limited = http_body_util::Limited::new(body, MAX_DETAIL_BYTES);
            // Too long or unreadable: the page goes without it.
            let read = async move { detail_text(&limited.collect().await.ok()?.to_bytes()) };
            Box::pin(read) as Self::Detail
        });
        Step::Page(
            Held {
                parts,
                error,
                event_id,
            },
            read,
        )
    }

    fn panicked(
        &self,
        exchange: &Exchange<HeaderValue, Route>,
        payload: &(dyn Any + Send),
    ) -> Self::Response {
        let page = exchange.panic_page(&self.config, payload);
        page.map(|body| BackstopBody::full(Bytes::from(body)))
    }

    /// The page, in the original response's head (its headers, but those that
    /// described its body, and its extensions stay).
    fn page(
        &self,
        exchange: &Exchange<HeaderValue, Route>,
        held: Held,
        detail: Option<String>,
    ) -> Self::Response {
        let Held {
            mut parts,
            error,
            event_id,
        } = held;
        let debug = error.as_ref().map(|e| PageDebug::Error(&*e.0));
        let page = exchange.page(
            &self.config,
            parts.status,
            event_id,
            detail,
            debug,
            &parts.headers,
        );
        let body = match page {
            Some(page) => {
                let (page, body) = page.into_parts();
                merge_page_headers(&mut parts.headers, page.headers);
                parts.status = page.status;
                Bytes::from(body)
            }
            None => Bytes::new(),
        };
        Response::from_parts(parts, BackstopBody::full(body))
    }

    fn status(response: &Self::Response) -> u16 {
        response.status().as_u16()
    }

    fn set_request_id(&self, response: &mut Self::Response, id: HeaderValue) {
        let name = self.config.http_options().request_id_header_name().clone();
        response.headers_mut().insert(name, id);
    }
}

impl<B, E> FailedGlue<E> for Glue<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// The service failed without a response (not an HTTP status): the server
    /// decides what the client sees.
    fn failed(&self, _: &Exchange<HeaderValue, Route>, error: E) -> Result<Step<Self>, E> {
        Err(error)
    }
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
