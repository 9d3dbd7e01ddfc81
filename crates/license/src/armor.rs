//! ASCII armor: `-----BEGIN <LABEL>-----`, standard base64 in lines of 64, `-----END <LABEL>-----`.
//!
//! Armor exists so a license survives e-mail and copy-paste. Decoding is strict: the only
//! accepted text is exactly what [`encode`] would produce for the decoded bytes (LF line
//! ends, or CRLF throughout, with or without one final line end). Accepting a single
//! canonical form means there is no second spelling of a file to reason about, and any
//! changed byte of the armor itself is an error before signatures are even looked at.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Upper bound on armored input; a real license is under 2 KiB. Refusing early keeps
/// untrusted uploads from costing memory.
pub const MAX_ARMORED_LEN: usize = 64 * 1024;

const LINE: usize = 64;

/// Armors `bytes` under `label`, with LF line ends and a final LF.
pub fn encode(label: &str, bytes: &[u8]) -> String {
    let body = STANDARD.encode(bytes);
    let mut out = String::with_capacity(body.len() + body.len() / LINE + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // Base64 output is ASCII, so byte chunks are char boundaries.
    for chunk in body.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Decodes armored `text` with label `label`; the error is a short reason for a person.
pub fn decode(label: &str, text: &str) -> Result<Vec<u8>, String> {
    if text.len() > MAX_ARMORED_LEN {
        return Err(format!("larger than {MAX_ARMORED_LEN} bytes"));
    }
    let normalized = normalize_line_ends(text)?;
    let begin = format!("-----BEGIN {label}-----\n");
    let end = format!("-----END {label}-----\n");
    let Some(rest) = normalized.strip_prefix(begin.as_str()) else {
        return Err(format!(
            "does not start with the line -----BEGIN {label}-----"
        ));
    };
    let Some(body) = rest.strip_suffix(end.as_str()) else {
        return Err(format!("does not end with the line -----END {label}-----"));
    };
    let joined: String = body.split('\n').collect();
    let bytes = STANDARD
        .decode(joined.as_bytes())
        .map_err(|e| format!("invalid base64 body ({e})"))?;
    if encode(label, &bytes) != normalized {
        return Err("armor is not in canonical form (base64 lines of 64 characters)".into());
    }
    Ok(bytes)
}

/// LF-terminated copy of `text`: CRLF is accepted only if every line uses it (a file that
/// went through a Windows editor), a missing final line end is added; anything else that is
/// not plain printable ASCII is left for the canonical comparison to reject.
fn normalize_line_ends(text: &str) -> Result<String, String> {
    let mut s = if text.contains('\r') {
        let lf = text.matches('\n').count();
        let crlf = text.matches("\r\n").count();
        let cr = text.matches('\r').count();
        if lf != crlf || cr != crlf {
            return Err("mixed or stray carriage returns".into());
        }
        text.replace("\r\n", "\n")
    } else {
        text.to_string()
    };
    if !s.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_only_canonical_spellings() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        let text = encode("X", &bytes);
        assert_eq!(decode("X", &text).unwrap(), bytes);
        assert_eq!(decode("X", text.trim_end()).unwrap(), bytes);
        assert_eq!(decode("X", &text.replace('\n', "\r\n")).unwrap(), bytes);

        let rewrapped = text.replacen('\n', "", 2).replacen("-----", "-----\n", 1);
        assert!(
            decode("X", &rewrapped).is_err(),
            "other line widths are refused"
        );
        assert!(decode("Y", &text).is_err(), "label must match");
        assert!(decode("X", &format!(" {text}")).is_err());
        assert!(
            decode("X", &format!("{text}\n")).is_err(),
            "extra blank line"
        );
        assert!(
            decode("X", &text.replacen('\n', "\r\n", 1)).is_err(),
            "mixed line ends"
        );
        assert!(decode("X", "").is_err());
        let huge = "A".repeat(MAX_ARMORED_LEN + 1);
        assert!(decode("X", &huge).is_err());
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        // "QR==" decodes to the same byte as "QQ==" with non-zero padding bits.
        let good = "-----BEGIN X-----\nQQ==\n-----END X-----\n";
        assert_eq!(decode("X", good).unwrap(), b"A");
        assert!(decode("X", &good.replace("QQ==", "QR==")).is_err());
        assert!(decode("X", &good.replace("QQ==", "QQ")).is_err());
        assert!(decode("X", &good.replace("QQ==", "Q Q==")).is_err());
    }
}
