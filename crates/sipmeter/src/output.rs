//! Printing CDR legs: JSON lines, CSV, or an aligned table for people.

use std::io::{self, Write};

use calls::Leg;
use server::{CSV_COLUMNS, LegRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
    Table,
}

/// Writes legs as they close, in one format.
pub struct LegWriter<W: Write> {
    out: W,
    format: Format,
    wrote_header: bool,
}

impl<W: Write> LegWriter<W> {
    pub fn new(out: W, format: Format) -> LegWriter<W> {
        LegWriter {
            out,
            format,
            wrote_header: false,
        }
    }

    pub fn write(&mut self, leg: &Leg) -> io::Result<()> {
        let rec = LegRecord::new(leg);
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, &rec)?;
                self.out.write_all(b"\n")
            }
            Format::Csv => {
                if !self.wrote_header {
                    self.wrote_header = true;
                    writeln!(self.out, "{}", CSV_COLUMNS.join(","))?;
                }
                let value = serde_json::to_value(&rec).map_err(io::Error::other)?;
                let cells: Vec<String> = CSV_COLUMNS.iter().map(|c| csv_cell(&value[*c])).collect();
                writeln!(self.out, "{}", cells.join(","))
            }
            Format::Table => {
                if !self.wrote_header {
                    self.wrote_header = true;
                    writeln!(
                        self.out,
                        "{:<27} {:<27} {:>9} {:>9} {:<16} {:<16} {:>4} {:<14} CALL-ID",
                        "START",
                        "END",
                        "DURATION",
                        "CONNECT",
                        "CALLER",
                        "CALLED",
                        "CODE",
                        "END REASON"
                    )?;
                }
                writeln!(
                    self.out,
                    "{:<27} {:<27} {:>9.3} {:>9.3} {:<16} {:<16} {:>4} {:<14} {}",
                    rec.start,
                    rec.end,
                    rec.duration,
                    rec.connect_duration,
                    clip(rec.caller, 16),
                    clip(rec.called, 16),
                    rec.last_response
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    rec.end_reason,
                    rec.call_id
                )
            }
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// RFC 4180 cell as the CLI prints it: the shared quoting, without the spreadsheet formula
/// guard of the GUI export (CLI output feeds scripts, which want the values unchanged).
fn csv_cell(v: &serde_json::Value) -> String {
    server::csv_cell(v, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv_cell(&serde_json::json!("plain")), "plain");
        assert_eq!(csv_cell(&serde_json::json!("a,b")), "\"a,b\"");
        assert_eq!(
            csv_cell(&serde_json::json!("say \"hi\"")),
            "\"say \"\"hi\"\"\""
        );
        assert_eq!(csv_cell(&serde_json::Value::Null), "");
        assert_eq!(csv_cell(&serde_json::json!(486)), "486");
    }
}
