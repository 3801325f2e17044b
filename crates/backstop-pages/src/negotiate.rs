//! Choosing HTML, problem+json or plain text from the `Accept` header.

use http::HeaderValue;

/// The format of an error page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageFormat {
    /// A branded HTML page, for browsers.
    Html,
    /// An RFC 9457 `application/problem+json` document, for API clients.
    ProblemJson,
    /// Plain text, for everything else.
    PlainText,
}

/// At most this many media ranges are looked at; the rest of a longer header is ignored.
const MAX_RANGES: usize = 32;

impl PageFormat {
    /// Chooses a format from the `Accept` header, honouring q-values.
    ///
    /// - `text/html` or `application/xhtml+xml` chooses HTML;
    /// - `application/problem+json` or `application/json` chooses problem+json;
    /// - anything else, including `*/*`, a missing or unreadable header, or one that
    ///   accepts none of the three, chooses plain text.
    ///
    /// The most specific range decides a format's q-value, and the highest q-value wins.
    /// At equal q, a format named exactly beats one reached through a wildcard.
    ///
    /// ```
    /// use backstop_pages::PageFormat;
    /// use http::HeaderValue;
    ///
    /// let browser = HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8");
    /// assert_eq!(PageFormat::negotiate(Some(&browser)), PageFormat::Html);
    /// let api = HeaderValue::from_static("application/json, text/html;q=0.5");
    /// assert_eq!(PageFormat::negotiate(Some(&api)), PageFormat::ProblemJson);
    /// assert_eq!(PageFormat::negotiate(None), PageFormat::PlainText);
    /// ```
    pub fn negotiate(accept: Option<&HeaderValue>) -> Self {
        Self::negotiate_str(accept.and_then(|v| v.to_str().ok()))
    }

    /// Like [`negotiate`](Self::negotiate), from the header's text, for frameworks whose
    /// header type is not `http` 1's (actix-web 4 uses `http` 0.2).
    ///
    /// ```
    /// use backstop_pages::PageFormat;
    ///
    /// assert_eq!(PageFormat::negotiate_str(Some("application/problem+json")), PageFormat::ProblemJson);
    /// ```
    pub fn negotiate_str(accept: Option<&str>) -> Self {
        let Some(header) = accept else {
            return Self::PlainText;
        };
        // Per format: (q, specificity) of the most specific matching range.
        let mut best = [None::<(u16, u8)>; 3];
        for range in header.split(',').take(MAX_RANGES) {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let Some(q) = parse_q(parts) else { continue };
            for (i, format) in [Self::Html, Self::ProblemJson, Self::PlainText]
                .into_iter()
                .enumerate()
            {
                let Some(specificity) = format.matches(media) else {
                    continue;
                };
                match best[i] {
                    Some((_, s)) if s >= specificity => {}
                    _ => best[i] = Some((q, specificity)),
                }
            }
        }
        // Ties go to exact matches, then to plain text for wildcards (curl's `*/*`),
        // then to HTML over JSON.
        let rank = |i: usize, format: Self| {
            best[i].filter(|(q, _)| *q > 0).map(|(q, s)| {
                let exact = s == 2;
                let preference = match (format, exact) {
                    (Self::Html, true) => 3,
                    (Self::ProblemJson, true) => 2,
                    (Self::PlainText, true) => 1,
                    (Self::PlainText, false) => 3,
                    (Self::ProblemJson, false) => 2,
                    (Self::Html, false) => 1,
                };
                (q, exact, preference)
            })
        };
        [Self::Html, Self::ProblemJson, Self::PlainText]
            .into_iter()
            .enumerate()
            .filter_map(|(i, format)| rank(i, format).map(|r| (r, format)))
            .max_by_key(|(r, _)| *r)
            .map_or(Self::PlainText, |(_, format)| format)
    }

    /// How specifically `media` names this format: 2 exactly, 1 by `type/*`, 0 by `*/*`.
    fn matches(self, media: &str) -> Option<u8> {
        let (kind, subtype) = media.split_once('/')?;
        let (kind, subtype) = (kind.trim(), subtype.trim());
        if kind == "*" && subtype == "*" {
            return Some(0);
        }
        if self == Self::Html
            && kind.eq_ignore_ascii_case("application")
            && subtype.eq_ignore_ascii_case("xhtml+xml")
        {
            return Some(2);
        }
        let (own_kind, own_subtypes): (&str, &[&str]) = match self {
            Self::Html => ("text", &["html"]),
            Self::ProblemJson => ("application", &["problem+json", "json"]),
            Self::PlainText => ("text", &["plain"]),
        };
        if !kind.eq_ignore_ascii_case(own_kind) {
            return None;
        }
        if subtype == "*" {
            // `text/*` is plain text; HTML is only chosen when asked for by name.
            return (self != Self::Html).then_some(1);
        }
        own_subtypes
            .iter()
            .any(|s| subtype.eq_ignore_ascii_case(s))
            .then_some(2)
    }

    /// The `Content-Type` sent with this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Html => "text/html; charset=utf-8",
            Self::ProblemJson => "application/problem+json; charset=utf-8",
            Self::PlainText => "text/plain; charset=utf-8",
        }
    }
}

/// The q-value of a range's parameters, in thousandths; `None` if malformed.
fn parse_q<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        let value = value.trim();
        let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
        if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut thousandths: u16 = match whole {
            "0" => 0,
            "1" => 1000,
            _ => return None,
        };
        let mut scale = 100;
        for digit in fraction.bytes() {
            thousandths += u16::from(digit - b'0') * scale;
            scale /= 10;
        }
        return (thousandths <= 1000).then_some(thousandths);
    }
    Some(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: &str) -> PageFormat {
        PageFormat::negotiate(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn browsers_get_html() {
        // Firefox, Chrome and Safari defaults.
        assert_eq!(
            pick("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            PageFormat::Html
        );
        assert_eq!(
            pick(
                "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
            ),
            PageFormat::Html
        );
        assert_eq!(pick("application/xhtml+xml"), PageFormat::Html);
        assert_eq!(pick("TEXT/HTML"), PageFormat::Html);
    }

    #[test]
    fn api_clients_get_problem_json() {
        assert_eq!(pick("application/json"), PageFormat::ProblemJson);
        assert_eq!(pick("application/problem+json"), PageFormat::ProblemJson);
        assert_eq!(pick("application/*"), PageFormat::ProblemJson);
        assert_eq!(pick("application/json, */*;q=0.1"), PageFormat::ProblemJson);
    }

    #[test]
    fn everything_else_gets_plain_text() {
        assert_eq!(PageFormat::negotiate(None), PageFormat::PlainText);
        assert_eq!(pick("*/*"), PageFormat::PlainText);
        assert_eq!(pick("text/*"), PageFormat::PlainText);
        assert_eq!(pick("text/plain"), PageFormat::PlainText);
        assert_eq!(pick("image/png"), PageFormat::PlainText);
        assert_eq!(pick(""), PageFormat::PlainText);
        assert_eq!(pick("garbage;;;,,=q"), PageFormat::PlainText);
        let binary = HeaderValue::from_bytes(b"text/html\xff").unwrap();
        assert_eq!(PageFormat::negotiate(Some(&binary)), PageFormat::PlainText);
    }

    #[test]
    fn q_values_are_honoured() {
        assert_eq!(
            pick("text/html;q=0.5, application/json;q=0.9"),
            PageFormat::ProblemJson
        );
        assert_eq!(
            pick("application/json;q=0.4, text/html;q=0.41"),
            PageFormat::Html
        );
        assert_eq!(
            pick("text/plain;q=1, text/html;q=0.999"),
            PageFormat::PlainText
        );
        assert_eq!(pick("text/html;q=0, */*"), PageFormat::PlainText);
        assert_eq!(
            pick("text/html; charset=utf-8; q=0.2, text/plain;q=0.1"),
            PageFormat::Html
        );
        assert_eq!(
            pick("text/html;Q=0.3, application/json;q=0.2"),
            PageFormat::Html
        );
    }

    #[test]
    fn the_most_specific_range_sets_the_q_value() {
        // `*/*` at 1 does not rescue HTML refused by name.
        assert_eq!(pick("*/*, text/html;q=0"), PageFormat::PlainText);
        assert_eq!(pick("text/*;q=0.1, text/html"), PageFormat::Html);
        assert_eq!(pick("text/plain;q=0, */*"), PageFormat::ProblemJson);
    }

    #[test]
    fn at_equal_q_exact_names_win() {
        assert_eq!(pick("*/*, application/json"), PageFormat::ProblemJson);
        assert_eq!(pick("text/html, application/json"), PageFormat::Html);
        assert_eq!(pick("application/json, text/html"), PageFormat::Html);
    }

    #[test]
    fn malformed_q_values_drop_the_range() {
        assert_eq!(
            pick("text/html;q=2, application/json"),
            PageFormat::ProblemJson
        );
        assert_eq!(
            pick("text/html;q=0.5555, application/json;q=0.1"),
            PageFormat::ProblemJson
        );
        assert_eq!(pick("text/html;q=abc"), PageFormat::PlainText);
        assert_eq!(pick("text/html;q=1.000"), PageFormat::Html);
        assert_eq!(pick("text/html;q=1.5"), PageFormat::PlainText);
    }

    #[test]
    fn huge_headers_are_bounded() {
        let mut header = "image/png, ".repeat(100);
        header.push_str("text/html");
        assert_eq!(pick(&header), PageFormat::PlainText);
    }
}
