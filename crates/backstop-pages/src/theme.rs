//! The look of the pages: brand, logo, links, colours and fonts.

use http::StatusCode;

/// The look of every error page: brand, logo, links, a colour per status, fonts and
/// extra CSS.
///
/// Build one with [`Theme::new`] and the builder methods. The CSS it produces is
/// computed once, when the theme is handed to [`ErrorPages`](crate::ErrorPages), not on
/// every render.
///
/// ```
/// use backstop_pages::{Accent, Theme};
/// use http::StatusCode;
///
/// let theme = Theme::new("Acme")
///     .home_url("https://acme.example/")
///     .support_email("help@acme.example")
///     .footer_link("Status", "https://status.acme.example/")
///     .accent(StatusCode::NOT_FOUND, Accent::gradient("#0f766e", "#115e59"))
///     .font_stack("\"Inter\", system-ui, sans-serif");
/// assert_eq!(theme.brand_name, "Acme");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Theme {
    /// The brand shown in the page header and the `<title>`; empty hides it.
    pub brand_name: String,
    /// The logo shown next to the brand name.
    pub logo: Option<Logo>,
    /// Where "Go home" and the brand link point.
    pub home_url: String,
    /// Where "Sign in" points on a 401 page.
    pub sign_in_url: String,
    /// How visitors reach support, shown under the actions.
    pub support: Option<Support>,
    /// Links shown in the footer.
    pub footer_links: Vec<FooterLink>,
    /// Colours that replace the default for a status.
    pub accents: Vec<(StatusCode, Accent)>,
    /// The CSS `font-family` value for the pages.
    pub font_stack: String,
    /// CSS appended after the default styles, so it wins.
    pub extra_css: String,
}

impl Default for Theme {
    fn default() -> Self {
        Self {
            brand_name: String::new(),
            logo: None,
            home_url: "/".to_owned(),
            sign_in_url: "/login".to_owned(),
            support: None,
            footer_links: Vec::new(),
            accents: Vec::new(),
            font_stack: DEFAULT_FONT_STACK.to_owned(),
            extra_css: String::new(),
        }
    }
}

/// The font stack used when a theme sets none: the platform's UI font.
pub const DEFAULT_FONT_STACK: &str = "system-ui, -apple-system, \"Segoe UI\", Roboto, \"Helvetica Neue\", Arial, \"Noto Sans\", sans-serif";

impl Theme {
    /// A theme with the default look and the given brand name.
    pub fn new(brand_name: impl Into<String>) -> Self {
        Self {
            brand_name: brand_name.into(),
            ..Self::default()
        }
    }

    /// Sets the logo.
    #[must_use]
    pub fn logo(mut self, logo: Logo) -> Self {
        self.logo = Some(logo);
        self
    }

    /// Sets where "Go home" and the brand link point (default `/`).
    #[must_use]
    pub fn home_url(mut self, url: impl Into<String>) -> Self {
        self.home_url = url.into();
        self
    }

    /// Sets where "Sign in" points on a 401 page (default `/login`).
    #[must_use]
    pub fn sign_in_url(mut self, url: impl Into<String>) -> Self {
        self.sign_in_url = url.into();
        self
    }

    /// Shows a support e-mail address under the actions.
    #[must_use]
    pub fn support_email(mut self, email: impl Into<String>) -> Self {
        self.support = Some(Support::Email(email.into()));
        self
    }

    /// Shows a link to a support page under the actions.
    #[must_use]
    pub fn support_url(mut self, url: impl Into<String>) -> Self {
        self.support = Some(Support::Url(url.into()));
        self
    }

    /// Adds a link to the footer.
    #[must_use]
    pub fn footer_link(mut self, label: impl Into<String>, href: impl Into<String>) -> Self {
        self.footer_links.push(FooterLink {
            label: label.into(),
            href: href.into(),
        });
        self
    }

    /// Sets the colour of one status's page, replacing the default.
    #[must_use]
    pub fn accent(mut self, status: StatusCode, accent: Accent) -> Self {
        self.accents.retain(|(s, _)| *s != status);
        self.accents.push((status, accent));
        self
    }

    /// Sets the CSS `font-family` value.
    #[must_use]
    pub fn font_stack(mut self, fonts: impl Into<String>) -> Self {
        self.font_stack = fonts.into();
        self
    }

    /// Appends CSS after the default styles.
    #[must_use]
    pub fn extra_css(mut self, css: impl Into<String>) -> Self {
        self.extra_css.push_str(&css.into());
        self
    }
}

/// The brand's logo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Logo {
    /// An image at a URL.
    Url(String),
    /// An inline SVG document, shown as an image so that nothing in it can run.
    Svg {
        /// The SVG source as given.
        source: String,
        /// The `data:` URL made from it once.
        data_url: String,
    },
}

impl Logo {
    /// A logo loaded from a URL.
    pub fn url(url: impl Into<String>) -> Self {
        Self::Url(url.into())
    }

    /// A logo from inline SVG source. It is embedded as a `data:` image, so the page
    /// requests nothing from outside and no script in the SVG can run.
    pub fn svg(source: impl Into<String>) -> Self {
        let source = source.into();
        let mut data_url = String::with_capacity(source.len() + 32);
        data_url.push_str("data:image/svg+xml,");
        for c in source.chars() {
            match c {
                '%' => data_url.push_str("%25"),
                '#' => data_url.push_str("%23"),
                '"' => data_url.push_str("%22"),
                '<' => data_url.push_str("%3C"),
                '>' => data_url.push_str("%3E"),
                '\n' | '\r' | '\t' => data_url.push(' '),
                c => data_url.push(c),
            }
        }
        Self::Svg { source, data_url }
    }

    /// The URL to put in an `<img src>`.
    pub fn src(&self) -> &str {
        match self {
            Self::Url(url) => url,
            Self::Svg { data_url, .. } => data_url,
        }
    }
}

/// How visitors reach support.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// An e-mail address, linked with `mailto:`.
    Email(String),
    /// A support page.
    Url(String),
}

/// A link in the page footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FooterLink {
    /// The link text.
    pub label: String,
    /// Where it points.
    pub href: String,
}

/// The colour of a status's page: a solid colour or a gradient, plus the text colour
/// used on top of it.
///
/// When the colours are hex (`#rgb` or `#rrggbb`), the text colour is chosen for the
/// better contrast (white or near-black); otherwise it is white. Set it yourself with
/// [`Accent::text_colour`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accent {
    background: String,
    solid: String,
    text: String,
}

impl Accent {
    /// A solid colour, such as `#b91c1c`.
    pub fn solid(colour: impl Into<String>) -> Self {
        let colour = clean_css_value(&colour.into());
        let text = text_colour_for(&[&colour]).to_owned();
        Self {
            background: colour.clone(),
            solid: colour,
            text,
        }
    }

    /// A diagonal gradient between two colours.
    pub fn gradient(from: impl Into<String>, to: impl Into<String>) -> Self {
        let from = clean_css_value(&from.into());
        let to = clean_css_value(&to.into());
        let text = text_colour_for(&[&from, &to]).to_owned();
        Self {
            background: format!("linear-gradient(135deg, {from}, {to})"),
            solid: from,
            text,
        }
    }

    /// Sets the colour of text drawn on the accent.
    #[must_use]
    pub fn text_colour(mut self, colour: impl Into<String>) -> Self {
        self.text = clean_css_value(&colour.into());
        self
    }

    /// The CSS `background` value.
    pub fn background(&self) -> &str {
        &self.background
    }

    /// One solid colour of the accent (the first of a gradient).
    pub fn solid_colour(&self) -> &str {
        &self.solid
    }

    /// The colour of text drawn on the accent.
    pub fn text(&self) -> &str {
        &self.text
    }
}

const LIGHT_TEXT: &str = "#ffffff";
const DARK_TEXT: &str = "#111827";

fn text_colour_for(colours: &[&str]) -> &'static str {
    let mut white = f64::INFINITY;
    let mut dark = f64::INFINITY;
    for colour in colours {
        let Some(l) = parse_hex(colour).map(relative_luminance) else {
            return LIGHT_TEXT;
        };
        white = white.min(contrast_ratio(1.0, l));
        dark = dark.min(contrast_ratio(relative_luminance((17, 24, 39)), l));
    }
    if dark > white { DARK_TEXT } else { LIGHT_TEXT }
}

/// Parses `#rgb` or `#rrggbb`.
pub(crate) fn parse_hex(colour: &str) -> Option<(u8, u8, u8)> {
    let hex = colour.trim().strip_prefix('#')?;
    let digit = |i: usize, len: usize| u8::from_str_radix(hex.get(i..i + len)?, 16).ok();
    match hex.len() {
        3 => Some((digit(0, 1)? * 17, digit(1, 1)? * 17, digit(2, 1)? * 17)),
        6 => Some((digit(0, 2)?, digit(2, 2)?, digit(4, 2)?)),
        _ => None,
    }
}

/// WCAG 2 relative luminance of an sRGB colour.
pub(crate) fn relative_luminance((r, g, b): (u8, u8, u8)) -> f64 {
    let channel = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.040_45 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
}

/// WCAG 2 contrast ratio between two relative luminances.
pub(crate) fn contrast_ratio(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    (hi + 0.05) / (lo + 0.05)
}

/// Keeps a theme value from ending its CSS declaration or the `<style>` element.
pub(crate) fn clean_css_value(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '{' | '}' | ';' | '\\') && !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_colours() {
        assert_eq!(parse_hex("#fff"), Some((255, 255, 255)));
        assert_eq!(parse_hex("#1d4ed8"), Some((0x1d, 0x4e, 0xd8)));
        assert_eq!(parse_hex("red"), None);
        assert_eq!(parse_hex("#12345"), None);
        assert_eq!(parse_hex("#ééé"), None);
    }

    #[test]
    fn contrast_matches_wcag_reference_values() {
        let white = relative_luminance((255, 255, 255));
        let black = relative_luminance((0, 0, 0));
        assert!((contrast_ratio(white, black) - 21.0).abs() < 1e-9);
        // #767676 on white is the classic 4.54:1.
        let grey = relative_luminance((0x76, 0x76, 0x76));
        assert!((contrast_ratio(white, grey) - 4.54).abs() < 0.01);
    }

    #[test]
    fn picks_readable_text_colour() {
        assert_eq!(Accent::solid("#fde047").text(), DARK_TEXT);
        assert_eq!(Accent::solid("#1d4ed8").text(), LIGHT_TEXT);
        assert_eq!(Accent::solid("rebeccapurple").text(), LIGHT_TEXT);
        assert_eq!(Accent::solid("#fde047").text_colour("#000").text(), "#000");
    }

    #[test]
    fn css_values_cannot_break_out() {
        let accent = Accent::solid("red;}</style><script>alert(1)</script>");
        assert!(!accent.background().contains('<'));
        assert!(!accent.background().contains(';'));
        assert!(!accent.background().contains('}'));
    }

    #[test]
    fn svg_logo_becomes_a_data_url() {
        let logo =
            Logo::svg("<svg xmlns=\"http://www.w3.org/2000/svg\"><path fill=\"#fff\"/></svg>");
        assert!(logo.src().starts_with("data:image/svg+xml,"));
        assert!(!logo.src().contains('#'));
        assert!(!logo.src().contains('<'));
        assert!(!logo.src().contains('"'));
    }

    #[test]
    fn accent_replaces_previous_for_same_status() {
        let theme = Theme::new("x")
            .accent(StatusCode::NOT_FOUND, Accent::solid("#000"))
            .accent(StatusCode::NOT_FOUND, Accent::solid("#111"));
        assert_eq!(theme.accents.len(), 1);
        assert_eq!(theme.accents[0].1.solid_colour(), "#111");
    }
}
