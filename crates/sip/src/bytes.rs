//! Byte-slice helpers shared by the sub-parsers.
//!
//! Everything works on `&[u8]` because wire data is not guaranteed to be UTF-8 and validating it
//! would cost time on the hot path for no benefit: callers compare and store bytes.

/// Whitespace as a header *value* sees it. CR and LF are included because a folded header
/// (continuation line starting with SP/HT) keeps its CRLF inside the value slice.
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 `token` characters; used to tell a method or parameter name from binary noise.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

#[inline]
pub(crate) fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = rest;
    }
    s
}

#[inline]
pub(crate) fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

#[inline]
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

/// Split at the first occurrence of `b`: `(before, Some(after))`, or `(s, None)`.
///
/// A plain loop, not memchr: the slices split here (parameters, URI parts) are a few dozen
/// bytes, where memchr's SIMD setup costs more than it saves.
#[inline]
pub(crate) fn split_once(s: &[u8], b: u8) -> (&[u8], Option<&[u8]>) {
    match find_byte(s, b) {
        Some(i) => (&s[..i], s.get(i + 1..)),
        None => (s, None),
    }
}

/// Index of the first `b` in a short slice (see [`split_once`] for why not memchr).
#[inline]
pub(crate) fn find_byte(s: &[u8], b: u8) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// Index of the first byte for which `f` holds, or `s.len()`.
#[inline]
pub(crate) fn position_or_len(s: &[u8], f: impl Fn(u8) -> bool) -> usize {
    s.iter().position(|&b| f(b)).unwrap_or(s.len())
}

/// Parse an unsigned decimal number made only of ASCII digits. Overflow and empty input give
/// `None` rather than wrapping, because a wrapped Content-Length would mis-frame a TCP stream.
#[inline]
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(n)
}

#[inline]
pub(crate) fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_folding_whitespace() {
        assert_eq!(trim(b" \t\r\n abc \r\n\t"), b"abc");
        assert_eq!(trim(b"\r\n"), b"");
        assert_eq!(trim(b""), b"");
    }

    #[test]
    fn parse_u64_rejects_overflow_and_non_digits() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"12a"), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
    }

    #[test]
    fn split_once_edges() {
        assert_eq!(split_once(b"a;b", b';'), (&b"a"[..], Some(&b"b"[..])));
        assert_eq!(split_once(b"a;", b';'), (&b"a"[..], Some(&b""[..])));
        assert_eq!(split_once(b"ab", b';'), (&b"ab"[..], None));
    }
}
