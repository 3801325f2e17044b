//! The team's site: its theme, its own layout around Backstop's default page content,
//! and a few texts of its own.
//!
//! This file is everything a team writes; `main.rs` only serves it. The browser test in
//! `crates/backstop-pages/tests/browser.rs` loads these pages too.

use backstop_pages::{Accent, ErrorPage, ErrorPages, Logo, PageText, Theme, markup};
use http::StatusCode;
use maud::{DOCTYPE, Markup, html};

/// The site's mark, inline so the page needs nothing from outside.
const LOGO: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#14532d"/><path d="M7 23 16 8l9 15z" fill="#bbf7d0"/><path d="M12 23l4-7 4 7z" fill="#14532d"/></svg>"##;

/// The site's own styles: a top bar and a footer. Appended after Backstop's defaults.
const SITE_CSS: &str = "
.nw-bar{background:#14532d;color:#f0fdf4}
.nw-bar-inner{max-width:42rem;margin:0 auto;padding:.8rem 1rem;display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1.25rem}
.nw-brand{display:inline-flex;align-items:center;gap:.5rem;font-weight:800;letter-spacing:.02em;color:inherit;text-decoration:none;margin-right:auto}
.nw-brand img{width:1.75rem;height:1.75rem}
.nw-nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem}
.nw-nav a{color:#f0fdf4;text-decoration:none;font-weight:600}
.nw-nav a:hover{text-decoration:underline}
.nw-main{padding-top:1.5rem}
.nw-footer{max-width:42rem;margin:0 auto;padding:0 1rem 2rem;color:var(--muted);font-size:.9rem;text-align:center}
";

/// The error pages of the Northwind site.
pub(crate) fn error_pages() -> ErrorPages {
    let theme = Theme::new("Northwind Outfitters")
        .logo(Logo::svg(LOGO))
        .home_url("/")
        .support_email("help@northwind.example")
        // The site's green for "not found"; the other statuses keep Backstop's colours.
        .accent(
            StatusCode::NOT_FOUND,
            Accent::gradient("#166534", "#14532d"),
        )
        .font_stack("ui-rounded, \"Segoe UI\", system-ui, sans-serif")
        .extra_css(SITE_CSS);
    ErrorPages::new(theme).layout(site_layout).text(
        StatusCode::NOT_FOUND,
        PageText::new(
            "This trail doesn't go anywhere",
            "The page you were looking for isn't here. It may have moved, or the link may be old.",
        ),
    )
}

/// The site's layout around Backstop's default content.
pub(crate) fn site_layout(page: &ErrorPage<'_>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(page.labels().lang) {
            head { (markup::head(page)) }
            body {
                (top_bar(page))
                main.bs-main.nw-main { (content) }
                footer.nw-footer {
                    "© Northwind Outfitters · " a href="/help" { "Help centre" } " · " a href="/privacy" { "Privacy" }
                }
            }
        }
    }
}

/// The site's top bar, shared with its normal pages.
fn top_bar(page: &ErrorPage<'_>) -> Markup {
    let theme = page.theme();
    html! {
        header.nw-bar {
            div.nw-bar-inner {
                a.nw-brand href=(theme.home_url) {
                    @if let Some(logo) = &theme.logo { img src=(logo.src()) alt=""; }
                    (theme.brand_name)
                }
                nav.nw-nav aria-label="Site" {
                    a href="/shop" { "Shop" }
                    a href="/journal" { "Journal" }
                    a href="/help" { "Help" }
                }
            }
        }
    }
}
