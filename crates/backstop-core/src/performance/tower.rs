//! [`OutgoingLayer`]: outgoing calls of a tower HTTP client (hyper's, or any
//! `Service<http::Request<B>>`) as `http.client` spans, with trace propagation. It
//! serves any app, whatever its server framework (feature `tower`).
//!
//! ```
//! use backstop_core::tower::OutgoingLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # async fn run() -> Result<(), backstop_core::tower::BoxError> {
//! // Any client service: hyper-util's legacy client, or a stack ending in one.
//! let client = service_fn(|request: http::Request<String>| async move {
//!     Ok::<_, std::io::Error>(http::Response::new(String::new()))
//! });
//! let client = OutgoingLayer::new().layer(client);
//! let response = client
//!     .oneshot(http::Request::get("http://rates.internal/eur").body(String::new())?)
//!     .await?;
//! # drop(response); Ok(()) }
//! ```
//!
//! A call made inside a request is a child span of it, carries `traceparent` and
//! `sentry-trace` (to the propagation targets), and leaves a breadcrumb; see
//! [`outgoing`](crate::outgoing). Outside any request it passes through untouched. The
//! service's errors come out boxed ([`BoxError`]), after their span is marked failed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::outgoing::HttpClientSpan;
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

/// A client service's error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps a client service in [`Outgoing`]; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct OutgoingLayer {
    _private: (),
}

impl OutgoingLayer {
    /// The layer.
    pub fn new() -> Self {
        OutgoingLayer::default()
    }
}

impl<S> Layer<S> for OutgoingLayer {
    type Service = Outgoing<S>;

    fn layer(&self, inner: S) -> Outgoing<S> {
        Outgoing { inner }
    }
}

/// A client service whose calls are spans; see [`OutgoingLayer`].
#[derive(Debug, Clone)]
pub struct Outgoing<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for Outgoing<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Body,
{
    type Response = http::Response<RB>;
    type Error = BoxError;
    type Future = OutgoingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let span = crate::outgoing::start_uri(request.method(), request.uri());
        span.inject(request.headers_mut());
        OutgoingFuture {
            inner: self.inner.call(request),
            span: span.is_recording().then_some(span),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Outgoing`]: ends the call's span when the response (or
    /// the error) comes.
    pub struct OutgoingFuture<F> {
        #[pin]
        inner: F,
        span: Option<HttpClientSpan>,
    }
}

impl<F> std::fmt::Debug for OutgoingFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingFuture")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for OutgoingFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
    E: Into<BoxError>,
    RB: Body,
{
    type Output = Result<http::Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx)).map_err(Into::into);
        // The span ends here, when it is dropped.
        if let Some(mut span) = this.span.take() {
            match &result {
                Ok(response) => {
                    span.status(response.status().as_u16());
                    if let Some(size) = response_size(response) {
                        span.response_size(size);
                    }
                }
                Err(error) => {
                    span.failed(crate::outgoing::failure_status(&**error));
                }
            }
        }
        Poll::Ready(result)
    }
}

/// The body's size: its `Content-Length`, else what the body knows of itself.
fn response_size<RB: Body>(response: &http::Response<RB>) -> Option<u64> {
    response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .or_else(|| response.body().size_hint().exact())
}
