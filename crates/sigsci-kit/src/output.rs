//! Output format and colour decisions, made here once for every command: `-o table|wide|json|yaml`,
//! `--color auto|always|never` with `NO_COLOR`, aligned tables and ages; and the one way to write
//! stdout (`out!`/`outln!`), which ends the process quietly when the reader is gone.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use clap::{Args, ValueEnum};
use serde::Serialize;

/// `print!` that ends the process quietly on a closed stdout (see [`write_stdout`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that ends the process quietly on a closed stdout (see [`write_stdout`]).
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

/// Writes to stdout. SIGPIPE stays ignored (Rust's default) because sockets are written with
/// `writev`, which raises it: a client gone mid-response would kill `sigsci-kit sim`, a reset from
/// the API an export. So a closed stdout (`| head`) is handled here, as Unix tools end there:
/// killed by SIGPIPE, without a message. Any other write error ends the command with one.
pub fn write_stdout(text: std::fmt::Arguments<'_>) {
    if let Err(error) = io::stdout().lock().write_fmt(text) {
        stdout_failed(&error)
    }
}

/// Bytes already rendered (a man page, a completion script) written the same way.
pub fn write_stdout_bytes(bytes: &[u8]) {
    if let Err(error) = io::stdout().lock().write_all(bytes) {
        stdout_failed(&error)
    }
}

fn stdout_failed(error: &io::Error) -> ! {
    if error.kind() == io::ErrorKind::BrokenPipe {
        #[cfg(unix)]
        // SAFETY: sets the disposition the C runtime defines and raises the signal; no handler
        // code of ours runs. The process ends there unless the signal is blocked.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
        }
        // A blocked SIGPIPE (or no Unix): the status a shell reports for a SIGPIPE death.
        std::process::exit(128 + 13)
    }
    eprintln!("sigsci-kit: cannot write to standard output: {error}");
    std::process::exit(1)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns with a header.
    #[default]
    Table,
    /// The table with the columns it hides.
    Wide,
    /// One JSON document on stdout, nothing else there.
    Json,
    /// One YAML document on stdout, nothing else there.
    Yaml,
}

/// `-o`, flattened into every command that prints a listing.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct OutputArgs {
    /// Output format: table (default), wide (every column), json or yaml (only the document on stdout).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

impl OutputArgs {
    /// JSON or YAML: stdout is reserved for the document.
    pub fn is_document(self) -> bool {
        matches!(self.format, Format::Json | Format::Yaml)
    }

    pub fn wide(self) -> bool {
        self.format == Format::Wide
    }

    /// Prints `document` as JSON or YAML; callers print tables themselves.
    pub fn print_document<T: Serialize>(self, document: &T) -> anyhow::Result<()> {
        match self.format {
            Format::Yaml => out!("{}", serde_yaml::to_string(document)?),
            _ => outln!("{}", serde_json::to_string_pretty(document)?),
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set.
    #[default]
    Auto,
    /// Colour even into pipes and files (and despite NO_COLOR).
    Always,
    /// No colour.
    Never,
}

static CHOICE: OnceLock<ColorChoice> = OnceLock::new();

/// Records `--color`; called once by `main` before anything prints.
pub fn set_color_choice(choice: ColorChoice) {
    let _ = CHOICE.set(choice);
}

fn colour_for(is_terminal: bool) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    match CHOICE.get().copied().unwrap_or_default() {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_terminal && !no_color,
    }
}

/// Whether text written to stdout may carry ANSI colour.
pub fn stdout_colour() -> bool {
    colour_for(std::io::stdout().is_terminal())
}

/// Whether stderr (logs, progress) may carry ANSI codes.
pub fn stderr_colour() -> bool {
    colour_for(std::io::stderr().is_terminal())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    Red,
    Green,
    Yellow,
}

/// `text` in `colour` when stdout takes colour, else unchanged.
pub fn paint(text: &str, colour: Colour) -> String {
    paint_when(stdout_colour(), text, colour)
}

/// `text` in `colour` when `enabled`, else unchanged: for text rendered before it is printed.
pub fn paint_when(enabled: bool, text: &str, colour: Colour) -> String {
    if !enabled {
        return text.to_string();
    }
    let code = match colour {
        Colour::Red => 31,
        Colour::Green => 32,
        Colour::Yellow => 33,
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A terraform-style plan with its `+`, `~` and `-` lines coloured (on a terminal).
pub fn paint_plan(plan: &str) -> String {
    plan.lines()
        .map(|line| {
            let colour = match line.trim_start().chars().next() {
                Some('+') => Some(Colour::Green),
                Some('~') => Some(Colour::Yellow),
                Some('-') => Some(Colour::Red),
                _ => None,
            };
            let mut out = colour.map_or_else(|| line.to_string(), |c| paint(line, c));
            out.push('\n');
            out
        })
        .collect()
}

/// Columns aligned as kubectl and gh print them: a header in capitals, two spaces between columns.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| visible_width(h)).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(visible_width(cell));
            }
        }
        let line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            let mut text = String::new();
            for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                text.push_str(cell);
                if index < last {
                    let pad = width - visible_width(cell) + 2;
                    text.push_str(&" ".repeat(pad));
                }
            }
            text.truncate(text.trim_end().len());
            text.push('\n');
            text
        };
        let mut out = line(self.headers.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }
}

/// The characters a terminal shows: ANSI escape sequences (colour) take no column.
fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, then one final byte in @..=~ ends it.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

/// A time as tables and documents print it: RFC 3339, whole seconds, UTC as `Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How long ago, as kubectl's AGE column says it: `45s`, `5m`, `3h`, `2d`.
pub fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let delta = (now - then).max(TimeDelta::zero());
    if delta < TimeDelta::minutes(1) {
        format!("{}s", delta.num_seconds())
    } else if delta < TimeDelta::hours(1) {
        format!("{}m", delta.num_minutes())
    } else if delta < TimeDelta::days(2) {
        format!("{}h", delta.num_hours())
    } else {
        format!("{}d", delta.num_days())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns_under_the_headers() {
        let mut table = Table::new(vec!["NAME", "STATUS", "AGE"]);
        table.row(vec!["site-1-agent-10".into(), "online".into(), "5m".into()]);
        table.row(vec!["a".into(), "offline".into(), "2d".into()]);
        assert_eq!(
            table.render(),
            "NAME             STATUS   AGE\nsite-1-agent-10  online   5m\na                offline  2d\n"
        );
    }

    #[test]
    fn colour_codes_take_no_width_in_tables() {
        let mut table = Table::new(vec!["STATUS", "AGE"]);
        table.row(vec![paint_when(true, "FIRING", Colour::Red), "5m".into()]);
        table.row(vec!["RESOLVED".into(), "2d".into()]);
        let plain = table
            .render()
            .replace("\x1b[31m", "")
            .replace("\x1b[0m", "");
        assert_eq!(plain, "STATUS    AGE\nFIRING    5m\nRESOLVED  2d\n");
        assert_eq!(paint_when(false, "FIRING", Colour::Red), "FIRING");
    }

    #[test]
    fn times_print_as_rfc3339_in_utc() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T05:04:03.250+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc3339(at), "2026-12-02T04:04:03Z");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = Utc::now();
        assert_eq!(age(now, now - TimeDelta::seconds(45)), "45s");
        assert_eq!(age(now, now - TimeDelta::minutes(5)), "5m");
        assert_eq!(age(now, now - TimeDelta::hours(3)), "3h");
        assert_eq!(age(now, now - TimeDelta::days(2)), "2d");
        assert_eq!(age(now, now + TimeDelta::minutes(1)), "0s");
    }
}
