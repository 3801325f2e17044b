//! How numbers, durations and times read on the pages.

use std::time::{Duration, SystemTime};

/// `0.4 ms`, `123 ms`, `1.23 s`.
pub(crate) fn dur(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// `just now`, `5 min ago`, `3 h ago`, `2 d ago`.
pub(crate) fn ago(t: SystemTime, now: SystemTime) -> String {
    let s = now.duration_since(t).unwrap_or_default().as_secs();
    match s {
        0..60 => "just now".to_owned(),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// `2026-12-07 10:48:26 UTC`.
pub(crate) fn stamp(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// `1.2%`.
pub(crate) fn pct(f: f64) -> String {
    let p = f * 100.0;
    if p > 0.0 && p < 0.1 {
        "<0.1%".to_owned()
    } else {
        format!("{p:.1}%")
    }
}

/// `12,345`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `12.3 MB`.
pub(crate) fn bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MB", n / 1024.0 / 1024.0)
    } else {
        format!("{:.2} GB", n / 1024.0 / 1024.0 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(dur(Duration::from_micros(420)), "0.4 ms");
        assert_eq!(dur(Duration::from_millis(123)), "123 ms");
        assert_eq!(dur(Duration::from_millis(1234)), "1.23 s");
        assert_eq!(pct(0.0123), "1.2%");
        assert_eq!(pct(0.0001), "<0.1%");
        assert_eq!(bytes(2048), "2.0 KB");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_104_506);
        assert_eq!(stamp(t), "2025-12-07 10:48:26 UTC");
    }
}
