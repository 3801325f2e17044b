//! Optional request-body capture: the handler reads the body as usual, and the first
//! bytes of it are kept for the request context.

use std::any::Any;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use backstop_core::adapter::BodyCapture;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The bytes kept so far, shared between the body and the request context.
pub(crate) type Captured = Arc<BodyCapture>;

/// Wraps the body so that the first `limit` bytes the handler reads are kept. Only
/// axum's body type can be wrapped without changing the request's type (which would
/// break `Router::layer`); other bodies pass through and nothing is captured.
pub(crate) fn tee<B: 'static>(body: B, limit: usize) -> (B, Option<Captured>) {
    #[cfg(feature = "axum")]
    {
        let mut slot = Some(body);
        if let Some(axum_body) =
            (&mut slot as &mut dyn Any).downcast_mut::<Option<axum::body::Body>>()
            && let Some(inner) = axum_body.take()
        {
            let captured = Arc::new(BodyCapture::new(limit));
            *axum_body = Some(axum::body::Body::new(TeeBody {
                inner,
                captured: captured.clone(),
            }));
            let body = slot.expect("the slot was refilled");
            return (body, Some(captured));
        }
        (slot.expect("the slot is full"), None)
    }
    #[cfg(not(feature = "axum"))]
    {
        let _ = (limit, &body as &dyn Any);
        (body, None)
    }
}

pin_project_lite::pin_project! {
    struct TeeBody<B> {
        #[pin]
        inner: B,
        captured: Captured,
    }
}

impl<B: Body<Data = Bytes>> Body for TeeBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            this.captured.push(data);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
