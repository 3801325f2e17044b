//! Optional request-body capture: the handler reads the body as usual, and the first
//! bytes of it are kept for the request context (core's
//! [`Tee`](backstop_core::adapter::Tee) copies them).

use std::any::Any;
use std::sync::Arc;

use backstop_core::adapter::BodyCapture;
#[cfg(feature = "axum")]
use backstop_core::adapter::Tee;

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
            let (tee, captured) = Tee::new(inner, limit);
            *axum_body = Some(axum::body::Body::new(tee));
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
