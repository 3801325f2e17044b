//! Getting a `std::error::Error`, with its `source()` chain, out of actix's error.
//!
//! actix keeps a response's error as `Box<dyn ResponseError>`, a trait that asks only for
//! `Debug + Display`. The concrete type can be recovered by downcasting, so the
//! middleware keeps a short list of types it knows (plus those the team names with
//! [`Backstop::error_type`](crate::Backstop::error_type)) and asks each in turn.

use std::error::Error as StdError;
use std::fmt;

use actix_web::ResponseError;
use backstop_core::Event;
use backstop_core::adapter::error_response_event;

/// One known error type: how to find it behind a `dyn ResponseError`.
#[derive(Clone, Copy)]
pub(crate) struct ErrorType {
    /// The event, built with the concrete type so its name is the real one.
    event: fn(&actix_web::Error, u16) -> Option<Event>,
    /// The error as a `std` error, for the debug page's chain.
    as_std: for<'a> fn(&'a actix_web::Error) -> Option<&'a (dyn StdError + 'static)>,
}

impl ErrorType {
    pub(crate) fn of<E: ResponseError + StdError + 'static>() -> Self {
        ErrorType {
            event: |e, status| e.as_error::<E>().map(|e| error_response_event(e, status)),
            as_std: |e| e.as_error::<E>().map(|e| e as &(dyn StdError + 'static)),
        }
    }

    /// `Box<dyn Error>`: the boxed error is the one to report.
    fn boxed() -> Self {
        type Boxed = Box<dyn StdError + 'static>;
        ErrorType {
            event: |e, status| {
                e.as_error::<Boxed>()
                    .map(|e| error_response_event(&**e, status))
            },
            as_std: |e| e.as_error::<Boxed>().map(|e| &**e),
        }
    }
}

/// The known error types, most recently added first.
#[derive(Clone)]
pub(crate) struct ErrorTypes(Vec<ErrorType>);

impl Default for ErrorTypes {
    fn default() -> Self {
        use actix_web::error::{
            JsonPayloadError, PathError, PayloadError, QueryPayloadError, UrlencodedError,
        };
        ErrorTypes(vec![
            ErrorType::boxed(),
            ErrorType::of::<std::io::Error>(),
            ErrorType::of::<JsonPayloadError>(),
            ErrorType::of::<PathError>(),
            ErrorType::of::<QueryPayloadError>(),
            ErrorType::of::<UrlencodedError>(),
            ErrorType::of::<PayloadError>(),
        ])
    }
}

impl ErrorTypes {
    pub(crate) fn add(&mut self, ty: ErrorType) {
        self.0.insert(0, ty);
    }

    /// The event for a response carrying `error`: the real type and chain when the
    /// type is known; otherwise the message, with the type name `Debug` starts with.
    pub(crate) fn event(&self, error: &actix_web::Error, status: u16) -> Event {
        self.0
            .iter()
            .find_map(|ty| (ty.event)(error, status))
            .unwrap_or_else(|| {
                error_response_event(&Opaque(error.as_response_error()) as &dyn StdError, status)
            })
    }

    /// The error as a `std` error, when its type is known.
    pub(crate) fn as_std<'a>(
        &self,
        error: &'a actix_web::Error,
    ) -> Option<&'a (dyn StdError + 'static)> {
        self.0.iter().find_map(|ty| (ty.as_std)(error))
    }
}

/// A `ResponseError` of unknown type, seen as a `std` error with no source.
struct Opaque<'a>(&'a dyn ResponseError);

impl fmt::Debug for Opaque<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for Opaque<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl StdError for Opaque<'_> {}
