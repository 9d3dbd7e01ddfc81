//! Feed arbitrary bytes to the HEPv3 parser and its stream framing: never a panic, and a frame
//! length is always within the input and at least the 6-byte header.
#![no_main]

use capture::hep;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(Ok(n)) = hep::frame_len(data) {
        assert!((6..=data.len()).contains(&n));
        if let Ok(p) = hep::parse(&data[..n])
            && let Some(payload) = p.payload
        {
            assert!(payload.len() < n);
        }
    }
    let _ = hep::parse(data);
});
