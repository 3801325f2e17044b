//! What each status says and looks like by default, and which headers belong to it.

use http::{HeaderName, StatusCode, header};

/// The default content and colour of one status's page.
#[derive(Debug)]
pub(crate) struct StatusDefaults {
    /// The status these defaults belong to (0 for the fallbacks); the tests check the
    /// table against [`STATUSES`].
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the tests only"))]
    pub(crate) code: u16,
    pub(crate) title: &'static str,
    pub(crate) message: &'static str,
    /// Gradient stops; both carry white text at WCAG AA contrast.
    pub(crate) accent: (&'static str, &'static str),
}

/// The statuses with a page of their own, in the order they are documented.
pub const STATUSES: [StatusCode; 13] = [
    StatusCode::BAD_REQUEST,
    StatusCode::UNAUTHORIZED,
    StatusCode::FORBIDDEN,
    StatusCode::NOT_FOUND,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::REQUEST_TIMEOUT,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::UNPROCESSABLE_ENTITY,
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
];

/// Defaults for the statuses in [`STATUSES`], then the 4xx and 5xx fallbacks.
pub(crate) const DEFAULTS: [StatusDefaults; 15] = [
    StatusDefaults {
        code: 400,
        title: "Bad request",
        message: "We couldn't understand that request. Please check the address or what you sent.",
        accent: ("#1d4ed8", "#2563eb"),
    },
    StatusDefaults {
        code: 401,
        title: "Please sign in",
        message: "You need to be signed in to see this page.",
        accent: ("#3730a3", "#4f46e5"),
    },
    StatusDefaults {
        code: 403,
        title: "Access denied",
        message: "You don't have permission to view this page. If you think you should, please contact us.",
        accent: ("#c2410c", "#9a3412"),
    },
    StatusDefaults {
        code: 404,
        title: "Page not found",
        message: "The page you're looking for doesn't exist or has moved.",
        accent: ("#6d28d9", "#a21caf"),
    },
    StatusDefaults {
        code: 405,
        title: "Method not allowed",
        message: "This page doesn't accept that kind of request.",
        accent: ("#0369a1", "#075985"),
    },
    StatusDefaults {
        code: 408,
        title: "Request timed out",
        message: "Your request took too long to reach us. Nothing was changed; please try again.",
        accent: ("#0f766e", "#115e59"),
    },
    StatusDefaults {
        code: 413,
        title: "Request too large",
        message: "What you sent is bigger than we can accept. Please try a smaller file or less data.",
        accent: ("#1e40af", "#3730a3"),
    },
    StatusDefaults {
        code: 422,
        title: "Check your input",
        message: "We understood the request, but some of what you sent isn't valid.",
        accent: ("#1d4ed8", "#0369a1"),
    },
    StatusDefaults {
        code: 429,
        title: "Too many requests",
        message: "You're going a little fast. Please wait a moment, then try again.",
        accent: ("#b45309", "#92400e"),
    },
    StatusDefaults {
        code: 500,
        title: "Something went wrong",
        message: "An unexpected error happened on our side. It's not your fault.",
        accent: ("#b91c1c", "#dc2626"),
    },
    StatusDefaults {
        code: 502,
        title: "Bad gateway",
        message: "A service we depend on sent us a broken response. Please try again in a moment.",
        accent: ("#be123c", "#9f1239"),
    },
    StatusDefaults {
        code: 503,
        title: "Temporarily unavailable",
        message: "We're down for maintenance or very busy right now. Please try again shortly.",
        accent: ("#9d174d", "#be185d"),
    },
    StatusDefaults {
        code: 504,
        title: "Gateway timeout",
        message: "A service we depend on took too long to answer. Please try again in a moment.",
        accent: ("#991b1b", "#c2410c"),
    },
    StatusDefaults {
        code: 0,
        title: "Request error",
        message: "Something about that request didn't work.",
        accent: ("#334155", "#475569"),
    },
    StatusDefaults {
        code: 0,
        title: "Server error",
        message: "Something went wrong on our side. Please try again in a moment.",
        accent: ("#991b1b", "#b91c1c"),
    },
];

const FALLBACK_4XX: usize = 13;
const FALLBACK_5XX: usize = 14;

/// The index into [`DEFAULTS`] for a status.
pub(crate) fn defaults_index(status: StatusCode) -> usize {
    match status.as_u16() {
        400 => 0,
        401 => 1,
        403 => 2,
        404 => 3,
        405 => 4,
        408 => 5,
        413 => 6,
        422 => 7,
        429 => 8,
        500 => 9,
        502 => 10,
        503 => 11,
        504 => 12,
        _ if status.is_server_error() => FALLBACK_5XX,
        _ => FALLBACK_4XX,
    }
}

/// Whether a status's page offers "Try again": every 5xx, 408 and 429.
pub fn offers_retry(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// Whether a status's page offers "Sign in": 401.
pub fn offers_sign_in(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED
}

/// The response headers that belong to a status and survive when its page replaces
/// the body: `WWW-Authenticate` on 401, `Allow` on 405, `Retry-After` on 413, 429 and
/// 503, and so on.
///
/// ```
/// use backstop_pages::status_headers;
/// use http::{StatusCode, header};
///
/// assert_eq!(status_headers(StatusCode::METHOD_NOT_ALLOWED), &[header::ALLOW]);
/// assert!(status_headers(StatusCode::NOT_FOUND).is_empty());
/// ```
pub fn status_headers(status: StatusCode) -> &'static [HeaderName] {
    match status.as_u16() {
        401 => &[header::WWW_AUTHENTICATE],
        405 => &[header::ALLOW],
        407 => &[header::PROXY_AUTHENTICATE],
        413 | 429 | 503 => &[header::RETRY_AFTER],
        416 => &[header::CONTENT_RANGE],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theme::{contrast_ratio, parse_hex, relative_luminance};

    #[test]
    fn every_listed_status_has_its_own_defaults() {
        for status in STATUSES {
            let d = &DEFAULTS[defaults_index(status)];
            assert_eq!(d.code, status.as_u16());
        }
        assert_eq!(defaults_index(StatusCode::IM_A_TEAPOT), FALLBACK_4XX);
        assert_eq!(defaults_index(StatusCode::NOT_IMPLEMENTED), FALLBACK_5XX);
    }

    #[test]
    fn default_accents_meet_wcag_aa_with_white_text() {
        let white = relative_luminance((255, 255, 255));
        for d in &DEFAULTS {
            for stop in [d.accent.0, d.accent.1] {
                let l = relative_luminance(parse_hex(stop).expect("hex"));
                let ratio = contrast_ratio(white, l);
                assert!(ratio >= 4.5, "{} {stop}: {ratio:.2}", d.code);
            }
        }
    }

    #[test]
    fn retry_and_sign_in_actions() {
        let retry: Vec<u16> = STATUSES
            .iter()
            .filter(|s| offers_retry(**s))
            .map(|s| s.as_u16())
            .collect();
        assert_eq!(retry, [408, 429, 500, 502, 503, 504]);
        assert!(offers_sign_in(StatusCode::UNAUTHORIZED));
        assert!(!offers_sign_in(StatusCode::FORBIDDEN));
    }
}
