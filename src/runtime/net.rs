//! Heartbeat links: one UDP socket per link, bound to this node's address on that link.
//!
//! Receiving: every datagram is checked by [`protocol::decode`] (MAC with the active key, then the next key
//! during a key roll); whatever fails — stray traffic, a forged or corrupted datagram, an oversized one — is
//! counted and traced at debug level, and a summary is logged at most once a minute. Nothing a remote host
//! sends can stop the loop. A valid datagram becomes `Input::Datagram { link, envelope }`; replay protection
//! and the cluster-name check are the engine's.
//!
//! Sending: an envelope is encoded once and sent from the link's socket (so its source is this node's link
//! address) to every peer's address on that link; the witness is reached from link 0's socket. Sends never
//! wait: a full socket buffer or an unreachable network drops the datagram (heartbeats are periodic) and is
//! logged, rate-limited.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::protocol::{self, DecodeError, Envelope, Keys};

use super::{Result, RuntimeError};

/// Size of the receive buffer: larger than [`protocol::MAX_DATAGRAM`], so an oversized datagram is seen as
/// such (and dropped) rather than silently truncated into something else.
pub const RECV_BUFFER: usize = 2048;

/// How often a summary of dropped datagrams or failed sends is logged at most.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// A datagram that passed authentication and decoding, with the link it arrived on.
#[derive(Clone, Debug)]
pub struct Received {
    pub link: usize,
    pub from: SocketAddr,
    pub envelope: Envelope,
}

/// Counters of what the links dropped or failed to send, for logs and `failoverd status`.
#[derive(Debug, Default)]
pub struct NetCounters {
    pub accepted: AtomicU64,
    pub too_short: AtomicU64,
    pub too_large: AtomicU64,
    pub bad_magic: AtomicU64,
    pub bad_version: AtomicU64,
    pub bad_mac: AtomicU64,
    pub malformed: AtomicU64,
    pub send_failed: AtomicU64,
    pub encode_failed: AtomicU64,
}

impl NetCounters {
    fn count_drop(&self, e: &DecodeError) {
        let c = match e {
            DecodeError::TooShort(_) => &self.too_short,
            DecodeError::TooLarge(_) => &self.too_large,
            DecodeError::BadMagic => &self.bad_magic,
            DecodeError::BadVersion(_) => &self.bad_version,
            DecodeError::BadMac => &self.bad_mac,
            DecodeError::Malformed(_) => &self.malformed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Datagrams dropped for any reason.
    pub fn dropped(&self) -> u64 {
        [&self.too_short, &self.too_large, &self.bad_magic, &self.bad_version, &self.bad_mac, &self.malformed]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// A snapshot as JSON (`failoverd status`).
    pub fn snapshot(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "accepted": g(&self.accepted),
            "dropped": self.dropped(),
            "too_short": g(&self.too_short),
            "too_large": g(&self.too_large),
            "bad_magic": g(&self.bad_magic),
            "bad_version": g(&self.bad_version),
            "bad_mac": g(&self.bad_mac),
            "malformed": g(&self.malformed),
            "send_failed": g(&self.send_failed),
            "encode_failed": g(&self.encode_failed),
        })
    }
}

/// Logs a problem at most once per [`SUMMARY_EVERY`], counting what it held back. The one place for
/// rate-limited drop logging: heartbeat sockets, failed sends, and the witness server.
#[derive(Debug)]
pub(crate) struct RateLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    pub(crate) fn new() -> RateLimit {
        RateLimit { last: None, suppressed: 0 }
    }

    /// Some(number suppressed since the last report) when it is time to report again.
    pub(crate) fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < SUMMARY_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// This node's heartbeat sockets, the peers' addresses and the keys.
#[derive(Debug)]
pub struct Links {
    node: String,
    names: Vec<String>,
    sockets: Vec<Arc<UdpSocket>>,
    /// The same sockets, for sending (nonblocking).
    senders: Vec<std::net::UdpSocket>,
    /// Per link: every peer's address on it.
    peers: Vec<Vec<(String, SocketAddr)>>,
    witness: Option<SocketAddr>,
    keys: Arc<Keys>,
    counters: Arc<NetCounters>,
    send_log: Mutex<BTreeMap<String, RateLimit>>,
}

/// Make a nonblocking UDP socket bound to `addr`, exclusively: the tokio half receives, the std half (the
/// same socket, duplicated) sends without waiting for the reactor to report it writable.
///
/// No SO_REUSEADDR and no SO_REUSEPORT: on Linux either lets two UDP sockets share a port, and a second
/// daemon started by mistake with the same addresses would then steal the heartbeats of the first (its peers
/// hear two incarnations of one node, and the node itself goes deaf). UDP has no TIME_WAIT, so a restarted
/// daemon binds at once without them.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<(UdpSocket, std::net::UdpSocket)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(false)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let std_socket: std::net::UdpSocket = socket.into();
    let sender = std_socket.try_clone()?;
    Ok((UdpSocket::from_std(std_socket)?, sender))
}

/// The pid of a process that holds a UDP socket bound to `addr` (or to the wildcard address of its port),
/// read from /proc (Linux); `None` when it cannot be found (another user's process without privileges).
pub fn udp_holder(addr: SocketAddr) -> Option<u32> {
    let (table, ip_hex, any_hex) = match addr.ip() {
        std::net::IpAddr::V4(ip) => ("/proc/net/udp", format!("{:08X}", u32::from_ne_bytes(ip.octets())), "00000000".to_string()),
        std::net::IpAddr::V6(ip) => {
            let words = |o: [u8; 16]| o.chunks(4).map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))).collect::<String>();
            ("/proc/net/udp6", words(ip.octets()), "0".repeat(32))
        }
    };
    let port = format!("{:04X}", addr.port());
    let text = std::fs::read_to_string(table).ok()?;
    let inodes: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let (ip, p) = cols.get(1)?.split_once(':')?;
            ((ip == ip_hex || ip == any_hex) && p == port).then(|| cols.get(9).map(|s| format!("socket:[{s}]"))).flatten()
        })
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

impl Links {
    /// Bind one socket per link at `node`'s addresses. Errors name the config key of the address.
    pub fn bind(cfg: &Config, node: &str, keys: Keys) -> Result<Links> {
        let (index, me) = cfg
            .nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.name == node)
            .ok_or_else(|| RuntimeError::config(format!("node {node} is not in the configuration")))?;
        if me.addresses.len() != cfg.link_count() {
            return Err(RuntimeError::config(format!(
                "node[{index}].addresses: {} addresses but cluster.links has {}",
                me.addresses.len(),
                cfg.link_count()
            )));
        }
        let mut sockets = Vec::new();
        let mut senders = Vec::new();
        for (link, addr) in me.addresses.iter().enumerate() {
            let name = &cfg.cluster.links[link];
            let (sock, sender) = bind_udp(*addr).map_err(|e| {
                let holder = if e.kind() == std::io::ErrorKind::AddrInUse {
                    match udp_holder(*addr) {
                        Some(pid) => format!(
                            ": pid {pid}{} holds it (another failoverd for this node? one daemon per node)",
                            super::state::process_line(pid)
                        ),
                        None => ": another process holds it (another failoverd for this node? `ss -ulpn` names it)".into(),
                    }
                } else {
                    String::new()
                };
                RuntimeError::io(format!(
                    "node[{index}].addresses[{link}] (node {node}, link {name}): cannot bind UDP {addr}: {e}{holder}"
                ))
            })?;
            sockets.push(Arc::new(sock));
            senders.push(sender);
        }
        let peers = (0..cfg.link_count())
            .map(|link| {
                cfg.nodes
                    .iter()
                    .filter(|n| n.name != node)
                    .filter_map(|n| n.addresses.get(link).map(|a| (n.name.clone(), *a)))
                    .collect()
            })
            .collect();
        Ok(Links {
            node: node.to_string(),
            names: cfg.cluster.links.clone(),
            sockets,
            senders,
            peers,
            witness: cfg.witness.as_ref().map(|w| w.address),
            keys: Arc::new(keys),
            counters: Arc::new(NetCounters::default()),
            send_log: Mutex::new(BTreeMap::new()),
        })
    }

    /// The counters shared with the receive tasks.
    pub fn counters(&self) -> Arc<NetCounters> {
        self.counters.clone()
    }

    /// The local address of each link's socket.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().filter_map(|s| s.local_addr().ok()).collect()
    }

    /// Spawn one receive task per link, each feeding valid datagrams into `tx`. The tasks end when `tx`'s
    /// receiver is dropped.
    pub fn spawn_receivers(&self, tx: mpsc::Sender<Received>) {
        for (link, sock) in self.sockets.iter().enumerate() {
            let sock = sock.clone();
            let keys = self.keys.clone();
            let counters = self.counters.clone();
            let tx = tx.clone();
            let node = self.node.clone();
            let name = self.names[link].clone();
            tokio::spawn(async move { receive_loop(node, link, name, sock, keys, counters, tx).await });
        }
    }

    /// Send `env` to every peer on `link`.
    pub fn send(&self, link: usize, env: &Envelope) {
        let Some(sock) = self.senders.get(link) else {
            tracing::error!(node = %self.node, link, "engine asked to send on a link that does not exist");
            return;
        };
        let Some(bytes) = self.encode(env) else { return };
        for (peer, addr) in &self.peers[link] {
            if let Err(e) = sock.send_to(&bytes, *addr) {
                self.send_failed(&format!("{peer}/{}", self.names[link]), *addr, &e);
            }
        }
    }

    /// Send `env` to the witness, from link 0's socket (its replies come back there).
    pub fn send_witness(&self, env: &Envelope) {
        let Some(addr) = self.witness else {
            tracing::error!(node = %self.node, "engine asked to reach the witness but no [witness] is configured");
            return;
        };
        let Some(bytes) = self.encode(env) else { return };
        if let Err(e) = self.senders[0].send_to(&bytes, addr) {
            self.send_failed("witness", addr, &e);
        }
    }

    fn encode(&self, env: &Envelope) -> Option<Vec<u8>> {
        match protocol::encode_keyed(env, &self.keys) {
            Ok(b) => Some(b),
            Err(e) => {
                self.counters.encode_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(node = %self.node, error = %e, "cannot encode an outgoing datagram: not sent");
                None
            }
        }
    }

    fn send_failed(&self, to: &str, addr: SocketAddr, e: &std::io::Error) {
        self.counters.send_failed.fetch_add(1, Ordering::Relaxed);
        let mut log = self.send_log.lock().unwrap_or_else(|p| p.into_inner());
        let limit = log.entry(to.to_string()).or_insert_with(RateLimit::new);
        if let Some(suppressed) = limit.ready() {
            tracing::warn!(node = %self.node, to, %addr, error = %e, suppressed, "cannot send heartbeat datagram");
        }
    }
}

async fn receive_loop(
    node: String,
    link: usize,
    name: String,
    sock: Arc<UdpSocket>,
    keys: Arc<Keys>,
    counters: Arc<NetCounters>,
    tx: mpsc::Sender<Received>,
) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut summary = RateLimit::new();
    let mut dropped_at_summary = 0u64;
    loop {
        let (len, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors (ECONNREFUSED from an earlier send) surface here on Linux: not fatal.
                tracing::debug!(node = %node, link = %name, error = %e, "receive error on heartbeat socket");
                if tx.is_closed() {
                    return;
                }
                // never spin on a socket that keeps failing
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        match protocol::decode(&buf[..len], &keys) {
            Ok(envelope) => {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                if tx.send(Received { link, from, envelope }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                counters.count_drop(&e);
                tracing::debug!(node = %node, link = %name, %from, len, error = %e, "dropped datagram");
                let total = counters.dropped();
                if summary.ready().is_some() {
                    tracing::warn!(
                        node = %node,
                        link = %name,
                        last_from = %from,
                        last_error = %e,
                        dropped_since_last_report = total - dropped_at_summary,
                        "dropping invalid datagrams on heartbeat port (wrong key, another cluster's traffic, or an attack)"
                    );
                    dropped_at_summary = total;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_refuses_a_port_taken_without_reuseaddr() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        // SO_REUSEADDR alone does not let us bind over a socket without it
        let err = bind_udp(addr);
        assert!(err.is_err());
        let (s, sender) = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(s.local_addr().unwrap().port() != 0);
        // exclusive: a second bind_udp on our own port is refused too (no SO_REUSEADDR sharing)
        let again = bind_udp(s.local_addr().unwrap()).expect_err("a second socket bound to a taken port");
        assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse);
        // the sender is the same socket: same address, never blocks
        assert_eq!(sender.local_addr().unwrap(), s.local_addr().unwrap());
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"x", peer.local_addr().unwrap()).unwrap();
        let mut b = [0u8; 4];
        let (n, from) = peer.recv_from(&mut b).unwrap();
        assert_eq!((n, from), (1, s.local_addr().unwrap()));
    }
}
