//! URIs, name-addr headers (From/To/Referred-By/Refer-To) and their parameters.
//!
//! Phones and PBXes disagree on almost every optional part of RFC 3261's address grammar, so
//! these parsers take the most permissive reading that still gives a call monitor what it
//! needs: user, host and `tag`. None of them allocate; none of them fail on garbage except by
//! returning `None`.

use crate::NameAddr;
use crate::bytes::{is_ws, parse_u64, split_once, trim, trim_start};

/// A SIP, SIPS or TEL URI split into its parts; every slice borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Uri<'a> {
    /// Scheme without the colon (`sip`, `sips`, `tel`, ...), empty when the URI had none.
    pub scheme: &'a [u8],
    /// User part without password (`alice` of `sip:alice:pw@host`); for `tel:` the number.
    pub user: &'a [u8],
    /// Host without port; IPv6 references are returned without their brackets.
    pub host: &'a [u8],
    /// Port when present and a valid `u16`.
    pub port: Option<u16>,
    /// URI parameters after the first `;`, without the `;` (e.g. `transport=tcp;lr`).
    pub params: &'a [u8],
    /// URI headers after `?`, still percent-encoded (e.g. `Replaces=abc%40h%3Bto-tag%3D1`).
    pub headers: &'a [u8],
}

impl<'a> Uri<'a> {
    /// Split a URI. Accepts a missing scheme (`alice@host`), `user:password@`, ports, IPv6
    /// references and user parts containing `;` (`sip:+123;npdi@host`), because all of them
    /// occur in real traffic.
    pub fn parse(uri: &'a [u8]) -> Uri<'a> {
        let uri = trim(uri);
        let (scheme, rest) = split_scheme(uri);
        let mut out = Uri {
            scheme,
            ..Uri::default()
        };
        if scheme.eq_ignore_ascii_case(b"tel") {
            // tel: has no host; parameters (phone-context, ...) follow the number.
            let (before_q, headers) = split_once(rest, b'?');
            let (number, params) = split_once(before_q, b';');
            out.user = trim(number);
            out.params = params.unwrap_or_default();
            out.headers = headers.unwrap_or_default();
            return out;
        }
        let hostport = match crate::bytes::find_byte(rest, b'@') {
            Some(at) => {
                let userinfo = &rest[..at];
                out.user = split_once(userinfo, b':').0;
                &rest[at + 1..]
            }
            None => rest,
        };
        let (host, after_host) = split_host(hostport);
        out.host = host;
        let mut tail = after_host;
        if let [b':', port @ ..] = tail {
            let n = position_or_delim(port);
            out.port = parse_u64(&port[..n]).and_then(|p| u16::try_from(p).ok());
            tail = &port[n..];
        }
        // Whatever sits between the port and `;`/`?` is junk; skip it.
        let (before_q, headers) = split_once(tail, b'?');
        out.params = split_once(before_q, b';').1.unwrap_or_default();
        out.headers = headers.unwrap_or_default();
        out
    }

    /// Value of a URI parameter (`transport`, `user`, ...), case-insensitive name.
    pub fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        find_param(self.params, name)
    }

    /// Value of a URI header (`Replaces` in `Refer-To: <sip:b@h?Replaces=...>`), still
    /// percent-encoded: decoding needs a buffer, and the caller decides whether it wants one.
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers.split(|&b| b == b'&').find_map(|item| {
            let (n, v) = split_once(item, b'=');
            if trim(n).eq_ignore_ascii_case(name) {
                Some(trim(v.unwrap_or_default()))
            } else {
                None
            }
        })
    }
}

/// Return `(scheme, rest)`. A scheme is an ALPHA-led token before the first `:` that comes before
/// any `@`; otherwise there is none (so `alice@host:5060` keeps its port).
fn split_scheme(uri: &[u8]) -> (&[u8], &[u8]) {
    for (i, &b) in uri.iter().enumerate() {
        match b {
            b':' if i > 0 && uri[0].is_ascii_alphabetic() => return (&uri[..i], &uri[i + 1..]),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'+' | b'-' | b'.' => {}
            _ => break,
        }
    }
    (&[], uri)
}

/// Split `host[:port]...` into host and the rest; `[v6]` loses its brackets.
fn split_host(hp: &[u8]) -> (&[u8], &[u8]) {
    if let [b'[', inner @ ..] = hp
        && let Some(end) = crate::bytes::find_byte(inner, b']')
    {
        return (&inner[..end], &inner[end + 1..]);
    }
    let n = hp
        .iter()
        .position(|&b| matches!(b, b':' | b';' | b'?' | b'>' | b',') || is_ws(b))
        .unwrap_or(hp.len());
    (&hp[..n], &hp[n..])
}

fn position_or_delim(s: &[u8]) -> usize {
    s.iter()
        .position(|&b| !b.is_ascii_digit())
        .unwrap_or(s.len())
}

/// Find `name` in a `;`-separated parameter list (`a=1;TAG=x;lr`); names compare
/// case-insensitively, values are trimmed, a parameter without `=` or with an empty value gives
/// `None` because callers use the result as an identifier.
pub fn find_param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    // Hand-rolled rather than `split(..).find_map(..)`: this runs for every tag and branch on
    // the hot path, and skipping items by length first avoids most comparisons.
    let mut rest = params;
    loop {
        let (item, next) = split_once(rest, b';');
        let (n, v) = split_once(item, b'=');
        let n = trim(n);
        if n.len() == name.len() && n.eq_ignore_ascii_case(name) {
            let v = trim(v?);
            // A quoted value (rare, but legal for generic params) loses its quotes.
            let v = match v {
                [b'"', inner @ .., b'"'] => inner,
                _ => v,
            };
            return (!v.is_empty()).then_some(v);
        }
        rest = next?;
    }
}

/// Split a quoted string starting at `s[0] == '"'`: returns the inner bytes (escapes left as on
/// the wire, since unescaping would need a copy) and the rest after the closing quote.
fn split_quoted(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut i = 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'\\' => i = i.saturating_add(2),
            b'"' => return Some((&s[1..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// The parts of a name-addr/addr-spec header value, before URI splitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddrParts<'a> {
    /// Display name without quotes (escapes untouched), `None` when absent or blank.
    pub display: Option<&'a [u8]>,
    /// The URI, without angle brackets.
    pub uri: &'a [u8],
    /// Header parameters after the URI, without the leading `;`.
    pub params: &'a [u8],
}

impl<'a> AddrParts<'a> {
    /// Split `"Display" <uri>;params`, `Display <uri>;params`, `<uri>;params` or the bare
    /// `uri;params` form. In the bare form RFC 3261 gives every `;` parameter to the header, but
    /// a user part may legally hold `;` too (`sip:+1;npdi@h;tag=x`), so the header parameters
    /// start at the first `;` after the `@` when there is one.
    pub fn parse(value: &'a [u8]) -> Option<AddrParts<'a>> {
        let v = trim(value);
        let mut display = None;
        let mut rest = v;
        if let [b'"', ..] = v {
            let (d, r) = split_quoted(v)?;
            if !trim(d).is_empty() {
                display = Some(d);
            }
            rest = trim_start(r);
        }
        if let Some(lt) = crate::bytes::find_byte(rest, b'<') {
            if display.is_none() {
                let d = trim(&rest[..lt]);
                if !d.is_empty() {
                    display = Some(d);
                }
            }
            let inside = &rest[lt + 1..];
            let (uri, params) = match crate::bytes::find_byte(inside, b'>') {
                Some(gt) => (&inside[..gt], &inside[gt + 1..]),
                // Unterminated `<`: take the URI to the end rather than lose the header.
                None => (inside, &[][..]),
            };
            let params = split_once(params, b';').1.unwrap_or_default();
            let uri = trim(uri);
            if uri.is_empty() {
                return None;
            }
            return Some(AddrParts {
                display,
                uri,
                params,
            });
        }
        // Bare addr-spec; a comma would start a second value (multi-valued headers).
        let mut rest = split_once(rest, b',').0;
        // Broken stacks send `Name sip:a@b;tag=x` without brackets: words before the URI are a
        // display name.
        let head = crate::bytes::trim_end(split_once(rest, b';').0);
        if let Some(ws) = head.iter().rposition(|&b| is_ws(b)) {
            if display.is_none() {
                display = Some(trim(&head[..ws]));
            }
            rest = &rest[ws + 1..];
        }
        let end_uri = rest.iter().position(|&b| is_ws(b)).unwrap_or(rest.len());
        let search_from = crate::bytes::find_byte(&rest[..end_uri], b'@').unwrap_or(0);
        let (uri, params) = match crate::bytes::find_byte(&rest[search_from..], b';') {
            Some(i) => {
                let i = search_from + i;
                (&rest[..i], &rest[i + 1..])
            }
            None => (rest, &[][..]),
        };
        let uri = trim(uri);
        if uri.is_empty() {
            return None;
        }
        Some(AddrParts {
            display,
            uri,
            params,
        })
    }
}

impl<'a> NameAddr<'a> {
    /// Parse a From/To style value. `None` only when no URI can be found at all (empty value,
    /// unterminated quoted display name).
    pub fn parse(value: &'a [u8]) -> Option<NameAddr<'a>> {
        let parts = AddrParts::parse(value)?;
        let uri = Uri::parse(parts.uri);
        Some(NameAddr {
            display: parts.display,
            user: uri.user,
            domain: uri.host,
            tag: find_param(parts.params, b"tag"),
        })
    }
}

/// The Replaces header (RFC 3891): which dialog an INVITE takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaces<'a> {
    pub call_id: &'a [u8],
    pub to_tag: Option<&'a [u8]>,
    pub from_tag: Option<&'a [u8]>,
    /// `early-only` flag present.
    pub early_only: bool,
}

impl<'a> Replaces<'a> {
    /// Parse a Replaces header value (`callid;to-tag=a;from-tag=b`). This is *not* for the
    /// percent-encoded copy inside a Refer-To URI; decode that first.
    pub fn parse(value: &'a [u8]) -> Option<Replaces<'a>> {
        let (call_id, params) = split_once(trim(value), b';');
        let call_id = trim(call_id);
        if call_id.is_empty() {
            return None;
        }
        let params = params.unwrap_or_default();
        Some(Replaces {
            call_id,
            to_tag: find_param(params, b"to-tag"),
            from_tag: find_param(params, b"from-tag"),
            early_only: params
                .split(|&b| b == b';')
                .any(|p| trim(p).eq_ignore_ascii_case(b"early-only")),
        })
    }
}

/// User and host of a URI or name-addr value (`sip:`, `sips:`, `tel:`, with or without angle
/// brackets and display name): the usual question a CDR asks of Request-URI, Refer-To or
/// Referred-By.
pub fn uri_user_host(value: &[u8]) -> (&[u8], &[u8]) {
    let v = trim(value);
    let uri = match v {
        [b'<', ..] | [b'"', ..] => AddrParts::parse(v).map(|p| p.uri).unwrap_or_default(),
        _ if crate::bytes::find_byte(v, b'<').is_some() => {
            AddrParts::parse(v).map(|p| p.uri).unwrap_or_default()
        }
        _ => v,
    };
    let u = Uri::parse(uri);
    (u.user, u.host)
}

/// True when `b` could be a URI scheme token start; used by start-line checks.
pub(crate) fn is_sip_scheme(b: &[u8]) -> bool {
    crate::bytes::starts_with_ignore_case(b, b"sip:")
        || crate::bytes::starts_with_ignore_case(b, b"sips:")
        || crate::bytes::starts_with_ignore_case(b, b"tel:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(v: &[u8]) -> NameAddr<'_> {
        NameAddr::parse(v).expect("parses")
    }

    #[test]
    fn quoted_display_with_escaped_quote() {
        let a = na(br#""Bob \"The\" Builder" <sip:bob@example.com>;tag=a1"#);
        assert_eq!(a.display, Some(&br#"Bob \"The\" Builder"#[..]));
        assert_eq!(a.user, b"bob");
        assert_eq!(a.domain, b"example.com");
        assert_eq!(a.tag, Some(&b"a1"[..]));
    }

    #[test]
    fn unquoted_display_and_no_display() {
        let a = na(b"Alice Smith <sip:alice@atlanta.com>");
        assert_eq!(a.display, Some(&b"Alice Smith"[..]));
        assert_eq!(a.tag, None);
        let a = na(b"<sip:alice@atlanta.com>;tag=9fxced76sl");
        assert_eq!(a.display, None);
        assert_eq!(a.tag, Some(&b"9fxced76sl"[..]));
        let a = na(br#""" <sip:alice@atlanta.com>"#);
        assert_eq!(a.display, None);
    }

    #[test]
    fn bare_uri_params_belong_to_header() {
        let a = na(b"sip:carol@chicago.com;tag=887s");
        assert_eq!(a.user, b"carol");
        assert_eq!(a.domain, b"chicago.com");
        assert_eq!(a.tag, Some(&b"887s"[..]));
        let a = na(b"sip:+1555;npdi;rn=1@gw.example;tag=x9");
        assert_eq!(a.user, b"+1555;npdi;rn=1");
        assert_eq!(a.domain, b"gw.example");
        assert_eq!(a.tag, Some(&b"x9"[..]));
    }

    #[test]
    fn unbracketed_display_name() {
        let a = na(b"Anonymous sip:anon@anonymous.invalid;tag=z1");
        assert_eq!(a.display, Some(&b"Anonymous"[..]));
        assert_eq!(a.user, b"anon");
        assert_eq!(a.domain, b"anonymous.invalid");
        assert_eq!(a.tag, Some(&b"z1"[..]));
        let a = na(b"\"Q\" sip:q@h\r\n ;tag=t");
        assert_eq!(a.display, Some(&b"Q"[..]));
        assert_eq!((a.user, a.tag), (&b"q"[..], Some(&b"t"[..])));
    }

    #[test]
    fn tel_uris() {
        let a = na(b"tel:+4930123456;tag=77");
        assert_eq!(a.user, b"+4930123456");
        assert_eq!(a.domain, b"");
        assert_eq!(a.tag, Some(&b"77"[..]));
        let a = na(b"<tel:5551234;phone-context=+1-212>;tag=q");
        assert_eq!(a.user, b"5551234");
        assert_eq!(a.tag, Some(&b"q"[..]));
    }

    #[test]
    fn ports_params_headers_ipv6() {
        let a =
            na(b"<sip:alice:secret@[2001:db8::1]:5070;transport=tcp?subject=x>;foo=bar;TAG=t1;lr");
        assert_eq!(a.user, b"alice");
        assert_eq!(a.domain, b"2001:db8::1");
        assert_eq!(a.tag, Some(&b"t1"[..]));
        let u = Uri::parse(b"sips:[::1]:5061;transport=tls");
        assert_eq!(u.scheme, b"sips");
        assert_eq!(u.host, b"::1");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.param(b"transport"), Some(&b"tls"[..]));
        let u = Uri::parse(b"sip:h.example:99999");
        assert_eq!(u.host, b"h.example");
        assert_eq!(u.port, None);
    }

    #[test]
    fn uri_without_scheme_or_user() {
        let u = Uri::parse(b"alice@host.example:5060");
        assert_eq!(u.scheme, b"");
        assert_eq!(u.user, b"alice");
        assert_eq!(u.host, b"host.example");
        assert_eq!(u.port, Some(5060));
        let u = Uri::parse(b"sip:registrar.example;lr");
        assert_eq!(u.user, b"");
        assert_eq!(u.host, b"registrar.example");
        assert_eq!(u.params, b"lr");
    }

    #[test]
    fn uri_header_lookup_keeps_encoding() {
        let u = Uri::parse(b"sip:bob@b.example?Replaces=12345%40h%3Bto-tag%3D1&X=y");
        assert_eq!(u.header(b"replaces"), Some(&b"12345%40h%3Bto-tag%3D1"[..]));
        assert_eq!(u.header(b"x"), Some(&b"y"[..]));
        assert_eq!(u.header(b"z"), None);
    }

    #[test]
    fn folded_value_is_whitespace() {
        let a = na(b"\"Al\"\r\n <sip:al@x.example>\r\n\t;tag=f1");
        assert_eq!(a.display, Some(&b"Al"[..]));
        assert_eq!(a.user, b"al");
        assert_eq!(a.tag, Some(&b"f1"[..]));
    }

    #[test]
    fn garbage_does_not_parse_or_panic() {
        assert_eq!(NameAddr::parse(b""), None);
        assert_eq!(NameAddr::parse(b"\"unterminated <sip:a@b>"), None);
        assert_eq!(NameAddr::parse(b"<>"), None);
        assert_eq!(NameAddr::parse(b"\"\\"), None);
        let a = na(b"<sip:a@b");
        assert_eq!(a.domain, b"b");
        let a = na(b"x;tag=");
        assert_eq!(a.tag, None);
    }

    #[test]
    fn replaces_header() {
        let r = Replaces::parse(b"425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only")
            .unwrap();
        assert_eq!(r.call_id, b"425928@bobster.example.org");
        assert_eq!(r.to_tag, Some(&b"7743"[..]));
        assert_eq!(r.from_tag, Some(&b"6472"[..]));
        assert!(r.early_only);
        assert_eq!(Replaces::parse(b" ;to-tag=1"), None);
    }

    #[test]
    fn user_host_helper() {
        assert_eq!(
            uri_user_host(b"sip:bob@b.example"),
            (&b"bob"[..], &b"b.example"[..])
        );
        assert_eq!(
            uri_user_host(b"\"Alice\" <sips:alice@a.example>"),
            (&b"alice"[..], &b"a.example"[..])
        );
        assert_eq!(
            uri_user_host(b"Carol <tel:+1555>"),
            (&b"+1555"[..], &b""[..])
        );
        assert_eq!(uri_user_host(b""), (&b""[..], &b""[..]));
    }
}
