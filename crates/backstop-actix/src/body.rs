//! Request body capture: the payload is wrapped so each chunk the handler reads is also
//! copied (up to the limit) into core's [`BodyCapture`], by core's [`Tee`]. Nothing is
//! read ahead.

use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use backstop_core::adapter::{BodyCapture, Tee};
use bytes::Bytes;
use futures_core::Stream;

/// Wraps the request's payload; returns the capture its chunks are copied into.
pub(crate) fn tee(payload: Payload, limit: usize) -> (Payload, Arc<BodyCapture>) {
    let (stream, capture) = Tee::new(payload, limit);
    let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
    (Payload::from(stream), capture)
}
