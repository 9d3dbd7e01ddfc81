//! Live capture from a network interface with libpcap (feature `live`).
//!
//! A [`LiveCapture`] yields the same (link type, timestamp, frame) triples as
//! [`reader::CaptureReader`](crate::reader::CaptureReader) does for a file, so frames go into
//! the same [`Decoder`](crate::Decoder) and everything after it is unchanged. The kernel filters
//! with a BPF program ([`default_filter`]: the SIP ports, plus IP fragments, which carry no
//! ports), so RTP never crosses into user space.
//!
//! Opening fails with a [`LiveError`] that says what to do: the interface name and the ones
//! that exist, the capability that is missing, or libpcap's own words about a bad filter.

use std::fmt::Write as _;
use std::time::Duration;

use crate::ports::PortSet;

/// How to open an interface.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Interface name as `ip link` shows it (`eth0`, `lo`, `any`).
    pub interface: String,
    /// BPF capture filter (tcpdump syntax); `None` = [`default_filter`] of the SIP ports.
    pub filter: Option<String>,
    /// Bytes kept of each frame. SIP over UDP can be a 64 KiB datagram, so the default keeps
    /// whole frames; a smaller value truncates messages and the parser then rejects them.
    pub snaplen: i32,
    pub promiscuous: bool,
    /// Kernel ring buffer in bytes: what absorbs a burst while the pipeline is busy.
    pub buffer_bytes: i32,
    /// How long [`LiveCapture::next_frame`] waits for a frame before returning `None`, so the
    /// caller can advance timers and check for a stop request on a quiet link.
    pub poll: Duration,
}

impl LiveConfig {
    pub fn new(interface: impl Into<String>) -> LiveConfig {
        LiveConfig {
            interface: interface.into(),
            filter: None,
            snaplen: 65_535,
            promiscuous: true,
            buffer_bytes: 32 << 20,
            poll: Duration::from_millis(200),
        }
    }
}

/// Why live capture could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("network interface {interface:?} does not exist (interfaces here: {available})")]
    NoSuchInterface {
        interface: String,
        available: String,
    },
    #[error(
        "no permission to capture on {interface:?}: run as root or give the binary the capabilities CAP_NET_RAW and CAP_NET_ADMIN (setcap cap_net_raw,cap_net_admin=eip PATH); libpcap said: {message}"
    )]
    PermissionDenied { interface: String, message: String },
    #[error("capture filter {filter:?} is not valid: {message}")]
    BadFilter { filter: String, message: String },
    #[error("cannot open network interface {interface:?}: {message}")]
    Open { interface: String, message: String },
    #[error("capture on {interface:?} failed: {message}")]
    Read { interface: String, message: String },
}

/// One captured frame, borrowed from libpcap's buffer until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// pcap link type (`LINKTYPE_*`), as the decoder expects it.
    pub linktype: u32,
    /// Capture time, microseconds since the Unix epoch (UTC).
    pub ts_us: i64,
    pub data: &'a [u8],
}

/// Frames seen and lost, from the kernel's point of view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Frames that passed the filter.
    pub received: u32,
    /// Frames lost because the ring buffer was full (the pipeline did not keep up).
    pub dropped: u32,
    /// Frames lost by the interface or its driver.
    pub if_dropped: u32,
}

/// An open capture on one interface.
pub struct LiveCapture {
    cap: pcap::Capture<pcap::Active>,
    interface: String,
    filter: String,
    linktype: u32,
    poll: Duration,
}

/// The BPF filter for `ports`: SIP over UDP or TCP on any of them, the same inside one VLAN
/// tag, and every IP fragment after the first (fragments carry no UDP header, so a port
/// filter would drop the rest of a large INVITE that the decoder could have rebuilt).
pub fn default_filter(ports: &PortSet) -> String {
    let mut p = String::new();
    for (i, (lo, hi)) in ports.ranges().into_iter().enumerate() {
        if i > 0 {
            p.push_str(" or ");
        }
        if lo == hi {
            let _ = write!(p, "port {lo}");
        } else {
            let _ = write!(p, "portrange {lo}-{hi}");
        }
    }
    if p.is_empty() {
        // No SIP port configured (content detection on any port): take every TCP/UDP frame.
        return "tcp or udp or (vlan and (tcp or udp))".to_string();
    }
    let sip = format!("(tcp or udp) and ({p})");
    let fragments = "(ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)";
    format!("({sip}) or {fragments} or (vlan and (({sip}) or {fragments}))")
}

fn message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m.clone(),
        other => other.to_string(),
    }
}

fn looks_like_permission(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("permission") || m.contains("not permitted")
}

/// The interface names libpcap can open here, for the message when a name is wrong.
fn interface_names() -> Vec<String> {
    pcap::Device::list()
        .map(|ds| ds.into_iter().map(|d| d.name).collect())
        .unwrap_or_default()
}

impl LiveCapture {
    /// Opens `config.interface`, applies the filter (`default_filter(ports)` unless one is
    /// given) and is then ready for [`next_frame`](LiveCapture::next_frame).
    pub fn open(config: &LiveConfig, ports: &PortSet) -> Result<LiveCapture, LiveError> {
        let interface = config.interface.clone();
        let names = interface_names();
        // libpcap's own message for a missing device varies by version and platform; asking
        // first gives one clear answer that lists what does exist.
        if !names.is_empty() && !names.contains(&interface) {
            return Err(LiveError::NoSuchInterface {
                interface,
                available: names.join(", "),
            });
        }
        let open_err = |e: pcap::Error| {
            let message = message(&e);
            if looks_like_permission(&message) {
                LiveError::PermissionDenied {
                    interface: interface.clone(),
                    message,
                }
            } else if message.to_ascii_lowercase().contains("no such device") {
                LiveError::NoSuchInterface {
                    interface: interface.clone(),
                    available: names.join(", "),
                }
            } else {
                LiveError::Open {
                    interface: interface.clone(),
                    message,
                }
            }
        };
        let mut cap = pcap::Capture::from_device(interface.as_str())
            .map_err(open_err)?
            .snaplen(config.snaplen)
            .promisc(config.promiscuous)
            .buffer_size(config.buffer_bytes)
            // Frames are handed over as they arrive, not in kernel blocks.
            .immediate_mode(true)
            .open()
            .and_then(|c| c.setnonblock())
            .map_err(open_err)?;
        let filter = config
            .filter
            .clone()
            .unwrap_or_else(|| default_filter(ports));
        cap.filter(&filter, true)
            .map_err(|e| LiveError::BadFilter {
                filter: filter.clone(),
                message: message(&e),
            })?;
        let linktype = cap.get_datalink().0 as u32;
        Ok(LiveCapture {
            cap,
            interface,
            filter,
            linktype,
            poll: config.poll,
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The BPF filter in force.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// The next frame, or `None` when none arrived within [`LiveConfig::poll`].
    ///
    /// The handle is non-blocking and the wait is our own `poll(2)`: libpcap's read timeout
    /// does not fire on Linux when no frame at all arrives, and a quiet link must still let
    /// the caller advance its timers and notice a stop request.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, LiveError> {
        if !self.wait_readable()? {
            return Ok(None);
        }
        match self.cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts;
                // time_t and suseconds_t are narrower than i64 on some platforms.
                #[allow(clippy::useless_conversion)]
                let ts_us = i64::from(ts.tv_sec) * 1_000_000 + i64::from(ts.tv_usec);
                Ok(Some(Frame {
                    linktype: self.linktype,
                    ts_us,
                    data: p.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => Ok(None),
            Err(e) => Err(LiveError::Read {
                interface: self.interface.clone(),
                message: message(&e),
            }),
        }
    }

    /// Whether a frame is ready within the poll time (at once if one is already waiting).
    fn wait_readable(&self) -> Result<bool, LiveError> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        use std::os::fd::AsFd;
        let timeout = Timespec {
            tv_sec: self.poll.as_secs() as _,
            tv_nsec: self.poll.subsec_nanos() as _,
        };
        let fd = self.cap.as_fd();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(LiveError::Read {
                interface: self.interface.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// The kernel's counters since the capture was opened.
    pub fn stats(&mut self) -> Result<LiveStats, LiveError> {
        let s = self.cap.stats().map_err(|e| LiveError::Read {
            interface: self.interface.clone(),
            message: message(&e),
        })?;
        Ok(LiveStats {
            received: s.received,
            dropped: s.dropped,
            if_dropped: s.if_dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_filter_names_the_ports_and_keeps_fragments() {
        let ports = PortSet::parse("5060,5061,5080-5090").unwrap();
        let f = default_filter(&ports);
        assert!(
            f.starts_with(
                "((tcp or udp) and (portrange 5060-5061 or portrange 5080-5090)) or (ip[6:2] & 0x1fff != 0)"
            ),
            "{f}"
        );
        assert!(f.contains("vlan and"), "{f}");
        let one = default_filter(&PortSet::parse("5060").unwrap());
        assert!(one.contains("(tcp or udp) and (port 5060)"), "{one}");
    }

    #[test]
    fn permission_messages_are_recognised() {
        assert!(looks_like_permission(
            "You don't have permission to perform this capture on that device (socket: Operation not permitted)"
        ));
        assert!(looks_like_permission("socket: Operation not permitted"));
        assert!(!looks_like_permission("lo: No such device exists"));
    }
}
