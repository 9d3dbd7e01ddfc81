//! Delivering an alert: a webhook (HTTP POST of JSON, http or https) or an e-mail through the
//! configured SMTP relay (upgraded with STARTTLS when the relay offers it); the CAs both trust.

use std::path::Path;

use calls::Micros;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;

use super::Engine;
use crate::error::chain;

/// The CAs alert deliveries trust: the system's CA bundle (`SSL_CERT_FILE`, else the usual
/// locations) plus the certificates of `ca_file`. A `ca_file` that cannot be read or holds no
/// certificate is an error naming it; no CA at all is an error saying what to configure.
pub fn trust_anchors(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = Vec::new();
    if let Some(bundle) = crate::license::portal_client::system_ca_bundle()
        && let Ok(pem) = std::fs::read(&bundle)
    {
        roots.extend(CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok));
    }
    if let Some(file) = ca_file {
        let pem = std::fs::read(file)
            .map_err(|e| format!("cannot read the alerts CA file {}: {e}", file.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                format!(
                    "the alerts CA file {} is not PEM certificates: {e}",
                    file.display()
                )
            })?;
        if certs.is_empty() {
            return Err(format!(
                "the alerts CA file {} holds no certificate",
                file.display()
            ));
        }
        roots.extend(certs);
    }
    if roots.is_empty() {
        return Err(
            "no CA certificates for TLS: no system CA bundle found; set alerts_ca_file (--alerts-ca)"
                .into(),
        );
    }
    Ok(roots)
}

pub(super) async fn post_webhook(
    engine: &Engine,
    url: &str,
    doc: &serde_json::Value,
) -> Result<(), String> {
    if url.starts_with("https://")
        && let Err(e) = &engine.tls
    {
        return Err(e.clone());
    }
    let r = engine
        .http
        .post(url)
        .json(doc)
        .send()
        .await
        .map_err(|e| chain(&e))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered HTTP {}", r.status()))
    }
}

/// Longest SMTP reply line read; a relay sending more is broken or hostile.
const MAX_SMTP_LINE: u64 = 4096;

/// Reads one SMTP reply (continuation lines `250-...` up to the last `250 ...`); its code
/// and text, lines joined by spaces.
async fn smtp_reply<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<(u16, String), String> {
    let (code, lines) = smtp_reply_lines(r).await?;
    Ok((code, lines.join(" ")))
}

/// One SMTP reply: its code and the text of each line.
async fn smtp_reply_lines<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
) -> Result<(u16, Vec<String>), String> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        let mut line = String::new();
        let n = (&mut *r)
            .take(MAX_SMTP_LINE)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("SMTP: {e}"))?;
        if n == 0 {
            return Err("SMTP: the relay closed the connection".into());
        }
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("SMTP: not a reply: {:?}", line.trim_end()))?;
        lines.push(line.get(4..).unwrap_or("").trim_end().to_string());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, lines));
        }
    }
    Err("SMTP: reply too long".into())
}

async fn smtp_step<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    command: &str,
    ok: &[u16],
) -> Result<(), String> {
    s.get_mut()
        .write_all(command.as_bytes())
        .await
        .map_err(|e| format!("SMTP: {e}"))?;
    let (code, text) = smtp_reply(s).await?;
    if ok.contains(&code) {
        Ok(())
    } else {
        Err(format!(
            "SMTP relay refused {}: {code} {text}",
            command.split_whitespace().next().unwrap_or("")
        ))
    }
}

/// SMTP (RFC 5321) to the configured relay, which delivers onwards. When the relay offers
/// STARTTLS (RFC 3207) the session is upgraded before the sender is named, with the same trust
/// as webhooks, and a failed upgrade fails the delivery instead of falling back to plain text;
/// a relay that does not offer it (a local one) is spoken to in plain text.
pub(super) async fn send_email(
    engine: &Engine,
    to: &str,
    subject: &str,
    body: &str,
    now: Micros,
) -> Result<(), String> {
    let config = &engine.config;
    let relay = config
        .smtp_relay
        .as_deref()
        .ok_or("no SMTP relay configured (--smtp HOST:PORT)")?;
    let from = &config.smtp_from;
    let date = jiff::Timestamp::from_microsecond(now)
        .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string())
        .unwrap_or_default();
    let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
    let mut message = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    );
    for line in body.lines() {
        // Dot-stuffing: a line starting with "." would otherwise end the message early.
        if line.starts_with('.') {
            message.push('.');
        }
        message.push_str(line);
        message.push_str("\r\n");
    }
    message.push_str(".\r\n");
    let talk = async {
        let tcp = tokio::net::TcpStream::connect(relay)
            .await
            .map_err(|e| format!("cannot connect to the SMTP relay {relay}: {e}"))?;
        let mut s = BufReader::new(tcp);
        let (code, text) = smtp_reply(&mut s).await?;
        if code != 220 {
            return Err(format!("SMTP relay greeting: {code} {text}"));
        }
        let offers_tls = match ehlo(&mut s).await? {
            Some(extensions) => extensions
                .iter()
                .any(|l| l.split_whitespace().next() == Some("STARTTLS")),
            None => {
                smtp_step(&mut s, "HELO sipmeter\r\n", &[250]).await?;
                false
            }
        };
        if !offers_tls {
            return smtp_transaction(&mut s, from, to, &message).await;
        }
        let tls = engine.tls.clone()?;
        smtp_step(&mut s, "STARTTLS\r\n", &[220]).await?;
        // Anything the relay sent after its 220 would be read as if it came over TLS.
        if !s.buffer().is_empty() {
            return Err("SMTP: the relay sent data after agreeing to STARTTLS".into());
        }
        let host = relay_host(relay);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| format!("SMTP relay {relay}: {host:?} is not a host name for TLS"))?;
        let tcp = s.into_inner();
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("SMTP STARTTLS with {relay}: {e}"))?;
        let mut s = BufReader::new(stream);
        // RFC 3207: everything learnt before TLS is forgotten; greet again.
        if ehlo(&mut s).await?.is_none() {
            return Err("SMTP relay refused EHLO after STARTTLS".into());
        }
        smtp_transaction(&mut s, from, to, &message).await
    };
    tokio::time::timeout(config.timeout, talk)
        .await
        .map_err(|_| format!("the SMTP relay {relay} did not answer in time"))?
}

/// The relay's host of `HOST:PORT` (`[v6]:PORT` too), for the TLS server name.
fn relay_host(relay: &str) -> &str {
    let host = relay.rsplit_once(':').map_or(relay, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `EHLO`; the relay's extension lines (first word: the keyword), or `None` when it refuses
/// EHLO (an old relay: HELO then).
async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
) -> Result<Option<Vec<String>>, String> {
    s.get_mut()
        .write_all(b"EHLO sipmeter\r\n")
        .await
        .map_err(|e| format!("SMTP: {e}"))?;
    let (code, lines) = smtp_reply_lines(s).await?;
    Ok((code == 250).then(|| lines.into_iter().skip(1).collect()))
}

/// Sender, recipient, message, goodbye.
async fn smtp_transaction<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    from: &str,
    to: &str,
    message: &str,
) -> Result<(), String> {
    smtp_step(s, &format!("MAIL FROM:<{from}>\r\n"), &[250]).await?;
    smtp_step(s, &format!("RCPT TO:<{to}>\r\n"), &[250, 251]).await?;
    smtp_step(s, "DATA\r\n", &[354]).await?;
    smtp_step(s, message, &[250]).await?;
    let _ = smtp_step(s, "QUIT\r\n", &[221]).await;
    Ok(())
}

/// An e-mail address that can go in an SMTP command and a header as is: no spaces, angle
/// brackets or line breaks (which would let a form inject commands or headers).
pub fn valid_email(a: &str) -> bool {
    let mut parts = a.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    a.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | ',' | ';' | '"' | '\\'))
}

pub(super) fn valid_webhook(u: &str) -> bool {
    u.len() <= 2048
        && (u.starts_with("http://") || u.starts_with("https://"))
        && reqwest::Url::parse(u).is_ok_and(|p| p.host_str().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_that_could_inject_smtp_commands_are_refused() {
        assert!(valid_email("ops@example.test"));
        assert!(!valid_email("ops@example.test\r\nRCPT TO:<x@y>"));
        assert!(!valid_email("a b@example.test"));
        assert!(!valid_email("<ops@example.test>"));
        assert!(!valid_email("ops@"));
        assert!(!valid_email("a@b@c"));
    }

    #[test]
    fn webhooks_are_http_urls_with_a_host() {
        assert!(valid_webhook("http://127.0.0.1:9000/hook"));
        assert!(valid_webhook("https://hooks.example.test/x"));
        assert!(!valid_webhook("ftp://example.test/"));
        assert!(!valid_webhook("http://"));
        assert!(!valid_webhook("javascript:alert(1)"));
    }
}
