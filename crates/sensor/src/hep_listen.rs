//! Live HEPv3 input: a collector socket that Kamailio (`siptrace`), OpenSIPS (`proto_hep`),
//! FreeSWITCH, Asterisk or heplify send to, on UDP and TCP at the same address.
//!
//! Receiving runs on threads of its own (one for UDP, one accepting TCP connections, one per
//! connection, each framing the stream by the HEP length field); packets reach the pipeline
//! through a bounded channel, so a burst waits in the kernel's socket buffers, not in memory
//! without bound. [`Pipeline::run_hep`] feeds them to the same decoder and tracker as a capture:
//! the SIP message of each packet is read with the original addresses, ports and time from its
//! chunks; timers run on the wall clock when nothing arrives. With a password, packets whose
//! auth key chunk differs are counted and dropped.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use calls::Leg;
use capture::hep;

use crate::{Pipeline, TrackSink};

/// Packets waiting for the pipeline at most; beyond, receivers block (TCP) or drop (UDP).
const QUEUE: usize = 16_384;
/// Largest HEP packet (its length field is 16 bits).
const MAX_PACKET: usize = 65_535;
/// Closed legs are handed out at least this often while packets flow.
const HAND_OUT_EVERY: Duration = Duration::from_millis(500);

/// How to listen.
#[derive(Debug, Clone)]
pub struct HepListenConfig {
    /// UDP and TCP address (port 0: any free port, the same for both).
    pub addr: SocketAddr,
    /// Required auth key chunk (HEP's "password"), if any.
    pub password: Option<String>,
    /// How long [`Pipeline::run_hep`] waits for a packet before advancing timers.
    pub poll: Duration,
}

impl HepListenConfig {
    pub fn new(addr: SocketAddr) -> HepListenConfig {
        HepListenConfig {
            addr,
            password: None,
            poll: Duration::from_millis(200),
        }
    }
}

/// Counters of the listener.
#[derive(Debug, Default)]
pub struct HepListenStats {
    pub udp_packets: AtomicU64,
    pub tcp_connections: AtomicU64,
    pub tcp_packets: AtomicU64,
    /// Datagrams dropped because the pipeline was behind, and TCP streams cut for bad framing.
    pub dropped: AtomicU64,
    /// Packets whose auth key did not match the password.
    pub bad_auth: AtomicU64,
}

struct Received {
    ts_us: i64,
    packet: Vec<u8>,
}

/// The open sockets and their threads. Dropping it stops them.
pub struct HepSource {
    rx: Receiver<Received>,
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<HepListenStats>,
    password: Option<Vec<u8>>,
    poll: Duration,
}

fn wall_clock_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A UDP socket and a TCP listener on the same address. With port 0 the system picks the UDP
/// port, and that number may already be taken for TCP by another socket: then another UDP
/// port is tried (a few times), instead of failing at random.
fn bind_both(
    addr: std::net::SocketAddr,
) -> io::Result<(UdpSocket, TcpListener, std::net::SocketAddr)> {
    let mut tries = 0;
    loop {
        let udp = UdpSocket::bind(addr)?;
        let local = udp.local_addr()?;
        match TcpListener::bind(local) {
            Ok(tcp) => return Ok((udp, tcp, local)),
            Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse && tries < 20 => {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

impl HepSource {
    /// Bind UDP and TCP on `cfg.addr` and start receiving.
    pub fn open(cfg: &HepListenConfig) -> io::Result<HepSource> {
        let (udp, tcp, local) = bind_both(cfg.addr)?;
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        tcp.set_nonblocking(true)?;
        let (tx, rx) = sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(HepListenStats::default());
        {
            let (tx, stop, stats) = (tx.clone(), stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("hep-udp".into())
                .spawn(move || udp_loop(&udp, &tx, &stop, &stats))?;
        }
        {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("hep-tcp".into())
                .spawn(move || accept_loop(&tcp, &tx, &stop, &stats))?;
        }
        Ok(HepSource {
            rx,
            local,
            stop,
            stats,
            password: cfg.password.as_ref().map(|p| p.as_bytes().to_vec()),
            poll: cfg.poll,
        })
    }

    /// The address bound (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn stats(&self) -> &HepListenStats {
        &self.stats
    }

    fn authorised(&self, packet: &[u8]) -> bool {
        let Some(pw) = &self.password else {
            return true;
        };
        match hep::parse(packet) {
            Ok(p) if p.auth_key == Some(pw.as_slice()) => true,
            // Malformed packets go on to the decoder, which counts them.
            Err(_) => true,
            Ok(_) => {
                self.stats.bad_auth.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

impl Drop for HepSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn udp_loop(
    sock: &UdpSocket,
    tx: &SyncSender<Received>,
    stop: &AtomicBool,
    stats: &HepListenStats,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    while !stop.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                stats.udp_packets.fetch_add(1, Ordering::Relaxed);
                let r = Received {
                    ts_us: wall_clock_us(),
                    packet: buf[..n].to_vec(),
                };
                match tx.try_send(r) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    tx: &SyncSender<Received>,
    stop: &Arc<AtomicBool>,
    stats: &Arc<HepListenStats>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
                let (tx, stop, stats) = (tx.clone(), stop.clone(), stats.clone());
                let _ = std::thread::Builder::new()
                    .name("hep-conn".into())
                    .spawn(move || conn_loop(conn, &tx, &stop, &stats));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One TCP connection: HEP packets back to back, framed by their length field.
fn conn_loop(
    mut conn: TcpStream,
    tx: &SyncSender<Received>,
    stop: &AtomicBool,
    stats: &HepListenStats,
) {
    if conn.set_nonblocking(false).is_err()
        || conn
            .set_read_timeout(Some(Duration::from_millis(200)))
            .is_err()
    {
        return;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_PACKET);
    let mut chunk = vec![0u8; 16 << 10];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        let mut start = 0;
        loop {
            match hep::frame_len(&buf[start..]) {
                Some(Ok(len)) => {
                    stats.tcp_packets.fetch_add(1, Ordering::Relaxed);
                    let r = Received {
                        ts_us: wall_clock_us(),
                        packet: buf[start..start + len].to_vec(),
                    };
                    // Blocking: TCP pushes back on the sender while the pipeline catches up.
                    if tx.send(r).is_err() {
                        return;
                    }
                    start += len;
                }
                None => break,
                Some(Err(_)) => {
                    // Not HEP (or lost framing): nothing after it can be trusted.
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        buf.drain(..start);
    }
}

impl Pipeline {
    /// Read HEP packets from `source` into the tracker until `stop` is set. Closed legs go to
    /// `on_legs` at least every half second; when nothing arrives, timers advance on the wall
    /// clock. Legs still open stay open: take them with [`Pipeline::finish`] at the end.
    pub fn run_hep(
        &mut self,
        source: &HepSource,
        stop: &AtomicBool,
        on_legs: &mut dyn FnMut(Vec<Leg>),
    ) {
        let mut no_progress = |_: u64| {};
        let mut sink = TrackSink {
            tracker: &mut self.tracker,
            totals: &mut self.totals,
            on_legs,
            progress: &mut no_progress,
        };
        let mut last_hand_out = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match source.rx.recv_timeout(source.poll) {
                Ok(r) => {
                    sink.totals.packets += 1;
                    sink.totals.bytes += r.packet.len() as u64;
                    if source.authorised(&r.packet) {
                        self.decoder.hep_packet(r.ts_us, &r.packet, &mut sink);
                    }
                    if last_hand_out.elapsed() >= HAND_OUT_EVERY {
                        sink.hand_out();
                        last_hand_out = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    sink.tracker.advance(wall_clock_us());
                    sink.hand_out();
                    last_hand_out = Instant::now();
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        sink.hand_out();
        self.totals.capture = self.decoder.stats().clone();
    }
}
