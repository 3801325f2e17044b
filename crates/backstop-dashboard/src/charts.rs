//! Charts as inline SVG, drawn on the server. They stretch to their box
//! (`preserveAspectRatio="none"`, strokes that do not scale), so one drawing fits a
//! phone and a desktop.

use maud::{Markup, html};

const W: f64 = 600.0;

/// An area chart of `values` (one per bucket), `h` units high.
pub(crate) fn area(values: &[f64], h: f64, class: &str) -> Markup {
    let max = values.iter().cloned().fold(0.0_f64, f64::max);
    let n = values.len().max(2);
    let step = W / (n - 1) as f64;
    let y = |v: f64| {
        if max > 0.0 {
            h - 2.0 - v / max * (h - 6.0)
        } else {
            h - 2.0
        }
    };
    let mut line = String::new();
    for (i, v) in values.iter().enumerate() {
        let cmd = if i == 0 { 'M' } else { 'L' };
        line.push_str(&format!("{cmd}{:.1} {:.1} ", i as f64 * step, y(*v)));
    }
    let fill = if values.is_empty() {
        String::new()
    } else {
        format!(
            "{line}L{:.1} {h} L0 {h} Z",
            (values.len() - 1) as f64 * step
        )
    };
    html! {
        svg.chart.(class) viewBox={ "0 0 " (W) " " (h) } preserveAspectRatio="none"
            role="img" aria-hidden="true" {
            line.grid x1="0" y1=(h - 1.0) x2=(W) y2=(h - 1.0) vector-effect="non-scaling-stroke" {}
            path.fill d=(fill) {}
            path.line d=(line) fill="none" vector-effect="non-scaling-stroke" {}
        }
    }
}

/// Several lines on one scale, each with its CSS class (`p50`, `p95`...).
pub(crate) fn lines(series: &[(&[f64], &str)], h: f64) -> Markup {
    let max = series
        .iter()
        .flat_map(|(values, _)| values.iter().cloned())
        .fold(0.0_f64, f64::max);
    let path = |values: &[f64]| {
        let n = values.len().max(2);
        let step = W / (n - 1) as f64;
        let mut d = String::new();
        for (i, v) in values.iter().enumerate() {
            let y = if max > 0.0 {
                h - 2.0 - v / max * (h - 6.0)
            } else {
                h - 2.0
            };
            d.push_str(&format!(
                "{}{:.1} {:.1} ",
                if i == 0 { 'M' } else { 'L' },
                i as f64 * step,
                y
            ));
        }
        d
    };
    html! {
        svg.chart.multi viewBox={ "0 0 " (W) " " (h) } preserveAspectRatio="none"
            role="img" aria-hidden="true" {
            line.grid x1="0" y1=(h - 1.0) x2=(W) y2=(h - 1.0) vector-effect="non-scaling-stroke" {}
            @for (values, class) in series {
                path.line.(class) d=(path(values)) fill="none" vector-effect="non-scaling-stroke" {}
            }
        }
    }
}

/// A bar chart of `values`, `h` units high.
pub(crate) fn bars(values: &[u64], h: f64, class: &str) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = values.len().max(1) as f64;
    let slot = W / n;
    let gap = (slot * 0.15).min(4.0);
    html! {
        svg.chart.(class) viewBox={ "0 0 " (W) " " (h) } preserveAspectRatio="none"
            role="img" aria-hidden="true" {
            line.grid x1="0" y1=(h - 0.5) x2=(W) y2=(h - 0.5) vector-effect="non-scaling-stroke" {}
            @for (i, v) in values.iter().enumerate() {
                @if *v > 0 {
                    @let bh = (*v as f64 / max * (h - 4.0)).max(1.5);
                    rect.bar x=(format!("{:.1}", i as f64 * slot + gap / 2.0)) y=(format!("{:.1}", h - bh))
                        width=(format!("{:.1}", slot - gap)) height=(format!("{bh:.1}")) {}
                }
            }
        }
    }
}

/// A small line of counts for a table row.
pub(crate) fn sparkline(values: &[u64]) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let (w, h) = (100.0, 24.0);
    let n = values.len().max(2);
    let step = w / (n - 1) as f64;
    let mut d = String::new();
    for (i, v) in values.iter().enumerate() {
        let cmd = if i == 0 { 'M' } else { 'L' };
        d.push_str(&format!(
            "{cmd}{:.1} {:.1} ",
            i as f64 * step,
            h - 2.0 - *v as f64 / max * (h - 4.0)
        ));
    }
    html! {
        svg.spark viewBox="0 0 100 24" preserveAspectRatio="none" role="img" aria-hidden="true" {
            path d=(d) fill="none" vector-effect="non-scaling-stroke" {}
        }
    }
}

/// A horizontal share bar (`fraction` of the width filled).
pub(crate) fn share(fraction: f64) -> Markup {
    let w = (fraction.clamp(0.0, 1.0) * 100.0).max(1.0);
    html! {
        svg.share viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-hidden="true" {
            rect.track x="0" y="0" width="100" height="6" rx="3" {}
            rect.value x="0" y="0" width=(format!("{w:.1}")) height="6" rx="3" {}
        }
    }
}
