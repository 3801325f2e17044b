//! Getting a `std::error::Error`, with its `source()` chain, out of actix's error: the
//! types the middleware knows behind its `dyn ResponseError` (core's [`KnownErrors`]
//! asks each in turn), plus those the team names with
//! [`Backstop::error_type`](crate::Backstop::error_type).

use std::error::Error as StdError;

use actix_web::ResponseError;
use backstop_core::adapter::{KnownError, KnownErrors, error_response_event};

/// The known error types, most recently added first.
pub(crate) type ErrorTypes = KnownErrors<actix_web::Error>;

/// How to find an `E` behind actix's error.
pub(crate) fn of<E: ResponseError + StdError + 'static>() -> KnownError<actix_web::Error> {
    KnownError {
        event: |e, status| e.as_error::<E>().map(|e| error_response_event(e, status)),
        as_std: |e| e.as_error::<E>().map(|e| e as &(dyn StdError + 'static)),
    }
}

/// `Box<dyn Error>`: the boxed error is the one to report.
fn boxed() -> KnownError<actix_web::Error> {
    type Boxed = Box<dyn StdError + 'static>;
    KnownError {
        event: |e, status| {
            e.as_error::<Boxed>()
                .map(|e| error_response_event(&**e, status))
        },
        as_std: |e| e.as_error::<Boxed>().map(|e| &**e),
    }
}

/// The types known from the start: `Box<dyn Error>`, `std::io::Error` and actix's
/// extractor errors.
pub(crate) fn known() -> ErrorTypes {
    use actix_web::error::{
        JsonPayloadError, PathError, PayloadError, QueryPayloadError, UrlencodedError,
    };
    KnownErrors::new(vec![
        boxed(),
        of::<std::io::Error>(),
        of::<JsonPayloadError>(),
        of::<PathError>(),
        of::<QueryPayloadError>(),
        of::<UrlencodedError>(),
        of::<PayloadError>(),
    ])
}
