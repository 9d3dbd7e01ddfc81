//! Feed arbitrary bytes to every public entry point of the SIP parser. The crate promises to
//! never panic; beyond that, check the invariants a stream reassembler relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sip::looks_like_sip(data);
    let skipped = sip::skip_keepalive(data);
    assert!(skipped <= data.len());

    if let Ok(m) = sip::parse(data) {
        // Body is a sub-slice of the input and never longer than Content-Length claims.
        let base = data.as_ptr() as usize;
        let body = m.body.as_ptr() as usize;
        assert!(m.body.is_empty() || (body >= base && body + m.body.len() <= base + data.len()));
        if let Some(n) = m.content_length {
            assert!(m.body.len() <= n);
        }
        // Raw values handed to helpers must not panic either.
        for v in [m.refer_to, m.referred_by, m.contact, m.replaces]
            .into_iter()
            .flatten()
        {
            let _ = sip::NameAddr::parse(v);
            let _ = sip::uri_user_host(v);
            let _ = sip::Replaces::parse(v);
        }
        if let sip::StartLine::Request { uri, .. } = m.start {
            let _ = sip::Uri::parse(uri);
        }
    }

    if let Some(Ok(n)) = sip::message_len(data) {
        assert!(n > 0 && n <= data.len());
        // A complete frame parses as a message with exactly the framed body.
        if let Ok(m) = sip::parse(&data[..n]) {
            let end = m.body.as_ptr() as usize + m.body.len() - data.as_ptr() as usize;
            assert!(m.body.is_empty() || end == n);
        }
    }
});
