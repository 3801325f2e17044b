//! Request body capture: the payload is wrapped so each chunk the handler reads is also
//! copied (up to the limit) into core's [`BodyCapture`]. Nothing is read ahead.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use backstop_core::adapter::BodyCapture;
use bytes::Bytes;
use futures_core::Stream;

/// Wraps the request's payload; returns the capture its chunks are copied into.
pub(crate) fn tee(payload: Payload, limit: usize) -> (Payload, Arc<BodyCapture>) {
    let capture = Arc::new(BodyCapture::new(limit));
    let stream = Tee {
        inner: payload,
        capture: capture.clone(),
    };
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(stream);
    (Payload::from(stream), capture)
}

struct Tee {
    inner: Payload,
    capture: Arc<BodyCapture>,
}

impl Stream for Tee {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.capture.push(chunk);
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
