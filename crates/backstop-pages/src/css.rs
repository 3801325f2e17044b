//! The stylesheet, built once per theme.

use crate::status::{DEFAULTS, STATUSES};
use crate::theme::{Accent, Theme, clean_css_value};
use http::StatusCode;

/// The CSS of a theme: one shared stylesheet, plus a small block of custom properties
/// per status. Both are computed once and pushed into pages as pre-escaped text.
#[derive(Clone, Debug)]
pub(crate) struct ThemeCss {
    pub(crate) base: String,
    /// Indexed like [`DEFAULTS`].
    by_index: Vec<String>,
    /// Accents the theme sets for statuses without a default page.
    extra: Vec<(StatusCode, String)>,
}

impl ThemeCss {
    pub(crate) fn new(theme: &Theme) -> Self {
        let mut base = String::with_capacity(BASE.len() + theme.extra_css.len() + 256);
        base.push_str(":root{--font:");
        base.push_str(&clean_css_value(&theme.font_stack));
        base.push('}');
        base.push_str(BASE);
        // A theme's CSS may hold anything, but it must not end the <style> element.
        // `\3c ` is CSS's own escape for `<`, so strings such as `content: "<"` still work.
        base.push_str(&theme.extra_css.replace('<', "\\3c "));

        let custom = |status: StatusCode| {
            theme
                .accents
                .iter()
                .find(|(s, _)| *s == status)
                .map(|(_, a)| a)
        };
        let by_index = DEFAULTS
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let status = STATUSES.get(i).copied();
                match status.and_then(custom) {
                    Some(accent) => vars(accent),
                    None => vars(&Accent::gradient(d.accent.0, d.accent.1)),
                }
            })
            .collect();
        let extra = theme
            .accents
            .iter()
            .filter(|(s, _)| !STATUSES.contains(s))
            .map(|(s, a)| (*s, vars(a)))
            .collect();
        Self {
            base,
            by_index,
            extra,
        }
    }

    /// The custom properties that colour a status's page.
    pub(crate) fn status_vars(&self, status: StatusCode, index: usize) -> &str {
        self.extra
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(&self.by_index[index], |(_, css)| css)
    }
}

fn vars(accent: &Accent) -> String {
    format!(
        ":root{{--accent:{};--accent-solid:{};--on-accent:{}}}",
        accent.background(),
        accent.solid_colour(),
        accent.text()
    )
}

/// Colours: light text #1f2430 on #ffffff is 15.5:1, muted #4b5262 on #ffffff 7.8:1
/// (6.9:1 on the code background); dark text #e8eaf0 on #181b24 is 14.3:1, muted
/// #b3b9c7 on #181b24 8.8:1 (7.3:1 on the code background).
const BASE: &str = r#"
:root{color-scheme:light dark;--bg:#f3f4f8;--card:#ffffff;--text:#1f2430;--muted:#4b5262;--border:#dde1ea;--code-bg:#eef0f5;--shadow:0 12px 32px rgba(15,23,42,.10);--focus:#1d4ed8}
@media (prefers-color-scheme:dark){:root{--bg:#0e1016;--card:#181b24;--text:#e8eaf0;--muted:#b3b9c7;--border:#2e3340;--code-bg:#252a36;--shadow:0 12px 32px rgba(0,0,0,.45);--focus:#93c5fd}}
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;min-height:100vh;display:flex;flex-direction:column;background:var(--bg);color:var(--text);font-family:var(--font);font-size:1rem;line-height:1.55;overflow-wrap:break-word}
a{color:inherit;text-underline-offset:.15em}
a:focus-visible{outline:3px solid var(--focus);outline-offset:2px;border-radius:.25rem}
.bs-site{width:100%;max-width:42rem;margin:0 auto;padding:1.25rem 1rem .75rem;display:flex;align-items:center}
.bs-brand{display:inline-flex;align-items:center;gap:.6rem;font-weight:700;font-size:1.1rem;text-decoration:none;color:var(--text)}
.bs-logo{height:2rem;width:auto;max-width:10rem}
.bs-main{flex:1;width:100%;max-width:42rem;margin:0 auto;padding:.75rem 1rem 2rem}
.bs-card{background:var(--card);border:1px solid var(--border);border-radius:1rem;overflow:hidden;box-shadow:var(--shadow)}
.bs-hero{background:var(--accent-solid);background:var(--accent);color:var(--on-accent);padding:2rem 2rem 1.6rem}
.bs-code{margin:0;font-size:4.5rem;font-weight:800;line-height:1;letter-spacing:-.03em;font-variant-numeric:tabular-nums}
.bs-body{padding:1.75rem 2rem 2rem}
.bs-body h1{margin:0 0 .5rem;font-size:1.9rem;line-height:1.2;letter-spacing:-.01em}
.bs-message{margin:0 0 1rem;color:var(--muted);font-size:1.08rem}
.bs-note{margin:.5rem 0;color:var(--muted)}
.bs-detail{margin:1rem 0;padding:.75rem 1rem;border-left:4px solid var(--accent-solid);background:var(--code-bg);border-radius:.4rem;white-space:pre-wrap;overflow-wrap:anywhere}
code,pre,.bs-mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.9em}
code{background:var(--code-bg);padding:.1em .35em;border-radius:.3em;overflow-wrap:anywhere;word-break:break-all}
.bs-actions{display:flex;flex-wrap:wrap;gap:.75rem;margin:1.5rem 0 0}
.bs-button{display:inline-block;padding:.7rem 1.25rem;border-radius:.6rem;font-weight:600;text-decoration:none;text-align:center;border:1px solid var(--border);background:var(--card);color:var(--text)}
.bs-button:hover{border-color:var(--muted)}
.bs-button-primary{background:var(--accent-solid);background:var(--accent);color:var(--on-accent);border-color:transparent}
.bs-button:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.bs-support{margin:1.5rem 0 0;padding-top:1rem;border-top:1px solid var(--border);color:var(--muted);font-size:.95rem}
.bs-footer{width:100%;max-width:42rem;margin:0 auto;padding:0 1rem 2rem;color:var(--muted);font-size:.9rem;text-align:center}
.bs-footer nav{display:flex;flex-wrap:wrap;justify-content:center;gap:.4rem 1.25rem;margin-bottom:.5rem}
.bs-debug .bs-site,.bs-debug .bs-main,.bs-debug .bs-footer{max-width:72rem}
.bs-banner{margin:0 0 1rem;padding:.75rem 1rem;border-radius:.6rem;background:#fef3c7;color:#713f12;border:1px solid #f59e0b;font-weight:600}
.bs-section{margin:1.5rem 0 0}
.bs-section h2{margin:0 0 .5rem;font-size:1.1rem}
.bs-panic{margin:0;padding:.75rem 1rem;background:var(--code-bg);border-radius:.4rem;white-space:pre-wrap;overflow-wrap:anywhere}
.bs-chain{margin:0;padding-left:1.25rem}
.bs-frames{list-style:none;margin:0;padding:0;border:1px solid var(--border);border-radius:.4rem;overflow:hidden}
.bs-frame{padding:.4rem .75rem;border-top:1px solid var(--border);border-left:4px solid transparent;overflow-wrap:anywhere;color:var(--muted)}
.bs-frame:first-child{border-top:0}
.bs-frame-app{border-left-color:var(--accent-solid);background:var(--code-bg);color:var(--text);font-weight:600}
.bs-frame-file{display:block;font-weight:400;font-size:.85em}
.bs-request{width:100%;border-collapse:collapse;table-layout:fixed}
.bs-request th,.bs-request td{padding:.35rem .5rem;border-top:1px solid var(--border);text-align:left;vertical-align:top;overflow-wrap:anywhere}
.bs-request th{width:30%;font-weight:600}
@media (max-width:480px){.bs-hero{padding:1.5rem 1.25rem 1.25rem}.bs-code{font-size:3.5rem}.bs-body{padding:1.25rem 1.25rem 1.5rem}.bs-body h1{font-size:1.55rem}.bs-main{padding:.5rem .75rem 1.5rem}.bs-actions .bs-button{flex:1 1 100%}}
@media (prefers-reduced-motion:reduce){*{transition:none!important;animation:none!important}}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theme::{contrast_ratio, parse_hex, relative_luminance};

    /// The value of a custom property in the first rule of `css` that sets it.
    fn var<'a>(css: &'a str, name: &str) -> &'a str {
        let start = css.find(&format!("--{name}:")).expect(name) + name.len() + 3;
        let end = start + css[start..].find([';', '}']).expect("end");
        &css[start..end]
    }

    #[test]
    fn text_meets_wcag_aa_in_light_and_dark_mode() {
        let dark_at = BASE.find("prefers-color-scheme:dark").expect("dark block");
        for (mode, css) in [("light", BASE), ("dark", &BASE[dark_at..])] {
            for fg in ["text", "muted"] {
                for bg in ["card", "bg", "code-bg"] {
                    let l = |n| relative_luminance(parse_hex(var(css, n)).expect("hex"));
                    let ratio = contrast_ratio(l(fg), l(bg));
                    assert!(ratio >= 4.5, "{mode}: {fg} on {bg} is {ratio:.2}");
                }
            }
        }
    }

    #[test]
    fn theme_css_is_built_once_with_every_status() {
        let css = ThemeCss::new(&Theme::default());
        assert_eq!(css.by_index.len(), DEFAULTS.len());
        assert!(
            css.status_vars(StatusCode::NOT_FOUND, 3)
                .contains("#6d28d9")
        );
    }
}
