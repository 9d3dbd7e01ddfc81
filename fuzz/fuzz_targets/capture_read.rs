//! Fuzz the capture reader and decoder: any bytes as a capture file (pcap, pcapng, gzip) must
//! give packets and/or an error, never a panic, and the per-file stats must agree with what the
//! sink received. The first byte picks options so both the small-buffer (records straddling
//! refills) and the SIP-ports-only paths are reached. The seeds include the SIPp captures
//! wrapped in every tunnel, SCTP and HEPv3 (`tunnel-*.pcap`, `sctp.pcap`, `hep.pcap`), so the
//! fuzzer starts inside each of those decoders.
#![no_main]

use capture::{CaptureConfig, Decoder, PortSet, SipPayload, Sink, read_capture};
use libfuzzer_sys::fuzz_target;

struct Count(u64);

impl Sink for Count {
    fn sip(&mut self, p: &SipPayload<'_>) {
        assert!(p.data.len() <= 1 << 20);
        self.0 += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&opts, bytes)) = data.split_first() else {
        return;
    };
    let mut cfg = CaptureConfig::default();
    // The default 8 MiB read buffer would be allocated per input and cap the fuzzer at about a
    // thousand runs a second; 64 KiB still holds any record the fuzzer makes.
    cfg.buffer_size = if opts & 1 != 0 { 64 } else { 64 << 10 };
    if opts & 2 != 0 {
        cfg.detect_any_port = false;
    }
    if opts & 4 != 0 {
        cfg.ports = PortSet::parse("1-65535").unwrap_or_default();
    }
    let mut dec = Decoder::new(&cfg);
    let mut sink = Count(0);
    let rep = read_capture("fuzz.pcap", bytes, &cfg, &mut dec, &mut sink);
    assert_eq!(rep.stats.sip_payloads, sink.0);
});
