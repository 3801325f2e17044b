//! Human output: aligned columns cut to the terminal's width, colour only on a terminal,
//! times and durations written short.
//!
//! Colour goes through `anstream`, which drops it when stdout is not a terminal and
//! honours `NO_COLOR` and `CLICOLOR_FORCE`. Columns are cut only on a terminal: piped
//! output keeps whole titles, for `grep`.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anstyle::{AnsiColor, Style};
use backstop_core::{Level, ProblemKind};
use backstop_store::{Issue, IssueKind, IssueStatus};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Stdout, with colour when it is a terminal.
pub(crate) struct Out {
    stream: anstream::AutoStream<io::StdoutLock<'static>>,
    width: Option<usize>,
}

impl Out {
    pub(crate) fn new() -> Out {
        let stdout = io::stdout();
        let width = stdout
            .is_terminal()
            .then(|| terminal_size::terminal_size().map_or(80, |(w, _)| usize::from(w.0)));
        Out {
            stream: anstream::AutoStream::auto(stdout.lock()),
            width,
        }
    }

    /// The terminal's width, when stdout is one.
    pub(crate) fn width(&self) -> Option<usize> {
        self.width
    }

    /// Writes a line.
    pub(crate) fn line(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.stream, "{text}")
    }

    /// Writes `text` in `style`, with no newline.
    pub(crate) fn styled(&mut self, style: Style, text: &str) -> io::Result<()> {
        write!(self.stream, "{style}{text}{style:#}")
    }

    /// Writes a line of JSON (and nothing else: no colour).
    pub(crate) fn json(&mut self, value: &impl serde::Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.stream, value)?;
        writeln!(self.stream)
    }

    /// Writes a pretty-printed JSON document.
    pub(crate) fn json_pretty(&mut self, value: &impl serde::Serialize) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.stream, value)?;
        writeln!(self.stream)
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// How a column's text sits in its width.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// One cell: its text (on one line) and style.
pub(crate) struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    pub(crate) fn new(text: &str) -> Cell {
        Cell::styled(text, Style::new())
    }

    pub(crate) fn styled(text: &str, style: Style) -> Cell {
        Cell {
            text: one_line(text),
            style,
        }
    }
}

/// Rows under a header. Every column but the last is as wide as its widest cell; the
/// last takes what is left of the terminal's width, and is cut to it.
pub(crate) struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<Cell>>,
}

const GAP: &str = "  ";

impl Table {
    pub(crate) fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// Writes the header and the rows, each line at most `out.width()` wide.
    pub(crate) fn print(&self, out: &mut Out) -> io::Result<()> {
        let last = self.columns.len() - 1;
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].text.width())
                    .chain([self.columns[i].0.width()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let fixed: usize = widths[..last].iter().map(|w| w + GAP.len()).sum();
        // Never squeeze the last column below a readable minimum, even on a narrow
        // terminal: a wrapped line reads better than an empty column.
        let room = out.width().map(|w| w.saturating_sub(fixed).max(12));
        let header: Vec<Cell> = self
            .columns
            .iter()
            .map(|(name, _)| Cell::styled(name, HEADER))
            .collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                if i == last {
                    let text = match room {
                        Some(room) => truncate(&cell.text, room),
                        None => cell.text.clone(),
                    };
                    out.styled(cell.style, &text)?;
                } else {
                    let pad = " ".repeat(widths[i] - cell.text.width());
                    let text = match self.columns[i].1 {
                        Align::Left => format!("{}{pad}", cell.text),
                        Align::Right => format!("{pad}{}", cell.text),
                    };
                    out.styled(cell.style, &text)?;
                    out.styled(Style::new(), GAP)?;
                }
            }
            out.line("")?;
        }
        Ok(())
    }
}

/// `text` cut to `width` columns, ending in `…` when cut. Control characters (a newline
/// in a message) become spaces, so one record stays on one line.
pub(crate) fn truncate(text: &str, width: usize) -> String {
    let text = one_line(text);
    if text.width() <= width {
        return text;
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// `text` with control characters (newlines, tabs, escapes) replaced by spaces: stored
/// text comes from the service's users, and must not move the cursor or recolour the
/// terminal.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub(crate) const HEADER: Style = Style::new().bold();
pub(crate) const DIM: Style = Style::new().dimmed();
pub(crate) const LABEL: Style = Style::new().bold();

pub(crate) fn level_style(level: Level) -> Style {
    match level {
        Level::Fatal | Level::Error => AnsiColor::Red.on_default(),
        Level::Warning => AnsiColor::Yellow.on_default(),
        Level::Info => AnsiColor::Blue.on_default(),
        Level::Debug => DIM,
    }
}

pub(crate) fn kind_style() -> Style {
    AnsiColor::Magenta.on_default()
}

/// The status as lists show it: `regressed` for an unresolved issue that came back.
pub(crate) fn status_label(issue: &Issue) -> &'static str {
    if issue.regressed && issue.status == IssueStatus::Unresolved {
        "regressed"
    } else {
        issue.status.as_str()
    }
}

pub(crate) fn status_style(issue: &Issue) -> Style {
    match (issue.status, issue.regressed) {
        (IssueStatus::Unresolved, true) => AnsiColor::Red.on_default().bold(),
        (IssueStatus::Unresolved, false) => Style::new(),
        (IssueStatus::Resolved, _) => AnsiColor::Green.on_default(),
        (IssueStatus::Ignored, _) => DIM,
    }
}

/// A short name for a problem kind, for narrow columns.
pub(crate) fn problem_label(kind: ProblemKind) -> &'static str {
    match kind {
        ProblemKind::NPlusOne => "n+1",
        ProblemKind::DuplicateQueries => "duplicate",
        ProblemKind::SlowQuery => "slow query",
        ProblemKind::TooManyQueries => "too many",
        ProblemKind::NPlusOneApiCalls => "n+1 calls",
        ProblemKind::SlowHttpCall => "slow call",
    }
}

/// An issue's title as lists show it: a performance issue's query is prefixed with
/// what was found (`N+1 query: SELECT ...`).
pub(crate) fn issue_title(issue: &Issue) -> String {
    match issue.kind {
        IssueKind::Error => issue.title.clone(),
        IssueKind::Performance(kind) => format!("{}: {}", kind.title(), issue.title),
    }
}

/// How long ago `t` was, in its largest unit: `42s ago`, `5m ago`, `3h ago`, `2d ago`.
pub(crate) fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3_600 => format!("{}m ago", secs / 60),
        3_600..86_400 => format!("{}h ago", secs / 3_600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// The last second RFC 3339 (and `humantime`) can write.
const LAST_SECOND: u64 = 253_402_300_799;

/// `t` within what RFC 3339 can express: a stored time from a bad clock is shown, not a
/// reason to fail.
fn representable(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Err(_) => UNIX_EPOCH,
        Ok(d) if d.as_secs() > LAST_SECOND => UNIX_EPOCH + Duration::from_secs(LAST_SECOND),
        Ok(_) => t,
    }
}

/// `2026-12-07T10:41:03.123Z`: the JSON form.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(representable(t)).to_string()
}

/// `2026-12-07 10:41:03 UTC`: the human form.
pub(crate) fn datetime(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(representable(t)).to_string();
    format!("{} UTC", s.trim_end_matches('Z').replacen('T', " ", 1))
}

/// `HH:MM:SS` of `t` in UTC, for `tail`.
pub(crate) fn clock(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(representable(t)).to_string();
    s.get(11..19).unwrap_or(&s).to_owned()
}

/// A duration in the unit that reads best: `0.42ms`, `12.5ms`, `340ms`, `2.1s`, `3m05s`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{ms:.2}ms")
    } else if ms < 100.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Milliseconds with microsecond precision, for JSON.
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_display_columns_and_marks_the_cut() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly10!", 10), "exactly10!");
        assert_eq!(truncate("a longer title", 8), "a longe…");
        // Wide characters take two columns each.
        assert_eq!(truncate("日本語のタイトル", 7), "日本語…");
        assert_eq!(truncate("line one\nline two", 40), "line one line two");
        assert_eq!(truncate("\u{1b}[31mred", 40), " [31mred");
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(duration(Duration::from_micros(420)), "0.42ms");
        assert_eq!(duration(Duration::from_micros(12_500)), "12.5ms");
        assert_eq!(duration(Duration::from_millis(340)), "340ms");
        assert_eq!(duration(Duration::from_millis(2_140)), "2.1s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
    }

    #[test]
    fn times_outside_rfc3339_are_clamped_not_a_panic() {
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
        let far = UNIX_EPOCH + Duration::from_secs(LAST_SECOND + 1_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.000Z");
        assert_eq!(
            datetime(UNIX_EPOCH + Duration::from_secs(90)),
            "1970-01-01 00:01:30 UTC"
        );
        assert_eq!(clock(UNIX_EPOCH + Duration::from_secs(3_725)), "01:02:05");
    }

    #[test]
    fn ages_use_their_largest_unit() {
        let now = SystemTime::now();
        assert_eq!(ago(now + Duration::from_secs(30)), "0s ago");
        assert_eq!(ago(now - Duration::from_secs(125)), "2m ago");
        assert_eq!(ago(now - Duration::from_secs(3 * 86_400 + 5)), "3d ago");
    }
}
