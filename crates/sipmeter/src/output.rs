//! Printing CDR legs: JSON lines, CSV, or an aligned table for people.

use std::io::{self, Write};

use calls::Leg;
use calls::time::format_rfc3339;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
    Table,
}

/// The printed shape of a leg. Field names are a contract: scripts and later tools read them.
#[derive(Serialize)]
struct LegRecord<'a> {
    call_id: &'a str,
    sensor_id: u32,
    caller: &'a str,
    called: &'a str,
    caller_domain: &'a str,
    called_domain: &'a str,
    caller_name: Option<&'a str>,
    called_name: Option<&'a str>,
    start: String,
    answer: Option<String>,
    end: String,
    duration: f64,
    connect_duration: f64,
    last_response: Option<u16>,
    last_response_text: Option<&'a str>,
    end_reason: &'static str,
    hangup_by: Option<&'static str>,
    transport: &'static str,
    src_ip: String,
    src_port: u16,
    dst_ip: String,
    dst_port: u16,
    partial: bool,
    referred_by: Option<&'a str>,
    refer_to: Option<&'a str>,
    replaces: Option<&'a str>,
    user_agent: Option<&'a str>,
    from_tag: Option<&'a str>,
    to_tag: Option<&'a str>,
    sip_messages: u32,
}

impl<'a> LegRecord<'a> {
    fn new(l: &'a Leg) -> LegRecord<'a> {
        LegRecord {
            call_id: &l.call_id,
            sensor_id: l.sensor_id,
            caller: &l.caller,
            called: &l.called,
            caller_domain: &l.caller_domain,
            called_domain: &l.called_domain,
            caller_name: l.caller_name.as_deref(),
            called_name: l.called_name.as_deref(),
            start: format_rfc3339(l.start),
            answer: l.answer.map(format_rfc3339),
            end: format_rfc3339(l.end),
            duration: l.duration(),
            connect_duration: l.connect_duration(),
            last_response: l.last_response,
            last_response_text: l.last_response_text.as_deref(),
            end_reason: l.end_reason.as_str(),
            hangup_by: l.hangup_by.map(|s| s.as_str()),
            transport: l.transport.as_str(),
            src_ip: l.src_ip.to_string(),
            src_port: l.src_port,
            dst_ip: l.dst_ip.to_string(),
            dst_port: l.dst_port,
            partial: l.partial,
            referred_by: l.referred_by.as_deref(),
            refer_to: l.refer_to.as_deref(),
            replaces: l.replaces.as_deref(),
            user_agent: l.user_agent.as_deref(),
            from_tag: l.from_tag.as_deref(),
            to_tag: l.to_tag.as_deref(),
            sip_messages: l.sip_message_count,
        }
    }
}

const CSV_COLUMNS: &[&str] = &[
    "call_id",
    "sensor_id",
    "caller",
    "called",
    "caller_domain",
    "called_domain",
    "caller_name",
    "called_name",
    "start",
    "answer",
    "end",
    "duration",
    "connect_duration",
    "last_response",
    "last_response_text",
    "end_reason",
    "hangup_by",
    "transport",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "partial",
    "referred_by",
    "refer_to",
    "replaces",
    "user_agent",
    "from_tag",
    "to_tag",
    "sip_messages",
];

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

/// RFC 4180 cell: quoted when it holds a comma, quote or line break; null is empty.
fn csv_cell(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::Null => return String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
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
