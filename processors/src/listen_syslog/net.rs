//! The sockets of `ListenSyslog`: a UDP receive loop, or a TCP (optionally
//! TLS) accept loop with one task per connection. Every message goes into
//! one bounded channel that `on_trigger` drains.
//!
//! Back-pressure: a TCP connection waits for room in the channel before it
//! reads again, so a full flow closes the TCP window on the sender and
//! nothing is dropped. UDP cannot push back: a datagram that finds the
//! channel full is dropped and counted (`udp.dropped`).
//!
//! Memory: each message is copied out of its connection's read buffer, so
//! what is held is the channel (at most `queue_size` messages of at most
//! `keep` bytes) plus one read buffer per open connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use sluice_runtime::{AttrStr, ProcessContext};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::framing::{Decoder, Frame};

/// Bytes asked of the kernel per TCP read.
const READ_CHUNK: usize = 32 * 1024;
/// Messages handed over per channel reservation.
const HANDOFF_BATCH: usize = 256;
/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;
/// Time a TLS client gets to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who sent a message.
#[derive(Debug)]
pub(super) struct Peer {
    /// The sender's address.
    pub(super) ip: IpAddr,
    /// The sender's address, as `syslog.sender`.
    pub(super) sender: AttrStr,
    /// Provenance URI (`tcp://10.0.0.5:41234`).
    pub(super) uri: String,
}

/// One message on its way to `on_trigger`.
#[derive(Debug)]
pub(super) struct Received {
    /// The bytes kept.
    pub(super) data: Bytes,
    /// Its length on the wire.
    pub(super) original_len: usize,
    /// Its sender.
    pub(super) peer: Arc<Peer>,
}

/// Named counters the listener keeps (shown in status and metrics).
pub(super) struct Counters {
    pub(super) udp_dropped: Arc<AtomicU64>,
    pub(super) rejected: Arc<AtomicU64>,
    pub(super) refused: Arc<AtomicU64>,
    pub(super) idle_closed: Arc<AtomicU64>,
    pub(super) tls_failed: Arc<AtomicU64>,
    pub(super) open: Arc<AtomicU64>,
}

impl Counters {
    pub(super) fn new(ctx: &ProcessContext) -> Self {
        Self {
            udp_dropped: ctx.counter("udp.dropped"),
            rejected: ctx.counter("senders.rejected"),
            refused: ctx.counter("connections.refused"),
            idle_closed: ctx.counter("connections.idle_closed"),
            tls_failed: ctx.counter("tls.handshake_failed"),
            open: ctx.counter("connections.open"),
        }
    }
}

/// Settings the socket tasks need.
pub(super) struct Settings {
    pub(super) max_message: usize,
    pub(super) keep: usize,
    pub(super) nul_delimits: bool,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) max_connections: usize,
    pub(super) allowed: Vec<IpNet>,
    pub(super) tls: Option<TlsAcceptor>,
}

/// What every socket task shares.
pub(super) struct Shared {
    pub(super) settings: Arc<Settings>,
    pub(super) tx: mpsc::Sender<Received>,
    pub(super) wake: Arc<Notify>,
    pub(super) cancel: CancellationToken,
    pub(super) counters: Counters,
}

impl Shared {
    fn allowed(&self, ip: IpAddr) -> bool {
        let allowed = &self.settings.allowed;
        allowed.is_empty() || allowed.iter().any(|n| n.contains(&ip))
    }
}

/// `syslog.sender` for `ip`: a constant while the budget lasts (senders are
/// a fleet), else a shared string.
fn sender_name(ip: IpAddr) -> AttrStr {
    let text = ip.to_string();
    AttrStr::lasting(&text).unwrap_or_else(|| AttrStr::from(text))
}

/// Binds `addr` and starts receiving datagrams. Returns the bound address.
///
/// # Errors
/// The socket cannot be bound.
pub(super) async fn start_udp(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let socket = UdpSocket::bind(addr).await?;
    let local = socket.local_addr()?;
    Ok((local, tokio::spawn(udp_loop(socket, shared))))
}

async fn udp_loop(socket: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last_peer: Option<Arc<Peer>> = None;
    let keep = shared.settings.keep;
    loop {
        let first = tokio::select! {
            () = shared.cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let mut next = Some(first);
        let mut handed = 0usize;
        while let Some(result) = next.take() {
            match result {
                Ok((n, from)) => {
                    let ip = from.ip().to_canonical();
                    if shared.allowed(ip) {
                        let peer = match &last_peer {
                            Some(p) if p.ip == ip => p.clone(),
                            _ => {
                                let p = Arc::new(Peer {
                                    ip,
                                    sender: sender_name(ip),
                                    uri: format!("udp://{ip}"),
                                });
                                last_peer = Some(p.clone());
                                p
                            }
                        };
                        let data = Bytes::copy_from_slice(&buf[..n.min(keep)]);
                        let msg = Received {
                            data,
                            original_len: n,
                            peer,
                        };
                        match shared.tx.try_send(msg) {
                            Ok(()) => handed += 1,
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                shared.counters.udp_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    } else {
                        shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "syslog UDP receive failed"),
            }
            if handed < HANDOFF_BATCH {
                match socket.try_recv_from(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    r => next = Some(r),
                }
            }
        }
        if handed > 0 {
            shared.wake.notify_waiters();
        }
    }
}

/// Binds `addr` and starts accepting TCP (or TLS) connections. Returns the
/// bound address.
///
/// # Errors
/// The socket cannot be bound.
pub(super) async fn start_tcp(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, tokio::spawn(accept_loop(listener, shared))))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let limit = Arc::new(Semaphore::new(shared.settings.max_connections));
    loop {
        let accepted = tokio::select! {
            () = shared.cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, from) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off a little
                // rather than spin; the pending connections wait in the backlog.
                tracing::warn!(error = %e, "syslog accept failed");
                tokio::select! {
                    () = shared.cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let ip = from.ip().to_canonical();
        if !shared.allowed(ip) {
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer = Arc::new(Peer {
            ip,
            sender: sender_name(ip),
            uri: format!(
                "{}://{}",
                if shared.settings.tls.is_some() {
                    "tls"
                } else {
                    "tcp"
                },
                SocketAddr::new(ip, from.port())
            ),
        });
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.counters.open.fetch_add(1, Ordering::Relaxed);
            serve(stream, peer, &shared).await;
            shared.counters.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

async fn serve(stream: TcpStream, peer: Arc<Peer>, shared: &Shared) {
    match &shared.settings.tls {
        None => read_loop(stream, peer, shared).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                () = shared.cancel.cancelled() => return,
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
            };
            match handshake {
                Ok(Ok(tls)) => read_loop(tls, peer, shared).await,
                Ok(Err(e)) => {
                    shared.counters.tls_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = %peer.uri, error = %e, "syslog TLS handshake failed");
                }
                Err(_) => {
                    shared.counters.tls_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = %peer.uri, "syslog TLS handshake timed out");
                }
            }
        }
    }
}

/// Reads frames until the sender closes, goes idle, or the listener stops.
async fn read_loop<S: AsyncRead + Unpin>(mut stream: S, peer: Arc<Peer>, shared: &Shared) {
    let s = &shared.settings;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut decoder = Decoder::new(s.max_message, s.keep, s.nul_delimits);
    let mut batch: Vec<Received> = Vec::with_capacity(HANDOFF_BATCH);
    let to_msg = |f: Frame| Received {
        data: Bytes::copy_from_slice(&f.data),
        original_len: f.original_len,
        peer: peer.clone(),
    };
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = async {
            match s.idle_timeout {
                Some(t) => tokio::time::timeout(t, stream.read_buf(&mut buf))
                    .await
                    .ok(),
                None => Some(stream.read_buf(&mut buf).await),
            }
        };
        let result = tokio::select! {
            () = shared.cancel.cancelled() => return,
            r = read => r,
        };
        let eof = match result {
            None => {
                shared.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(Ok(0)) => true,
            Some(Ok(_)) => false,
            Some(Err(e)) => {
                tracing::debug!(peer = %peer.uri, error = %e, "syslog connection read failed");
                true
            }
        };
        while let Some(f) = decoder.decode(&mut buf) {
            batch.push(to_msg(f));
            if batch.len() >= HANDOFF_BATCH && !hand_over(&mut batch, shared).await {
                return;
            }
        }
        if eof {
            if let Some(f) = decoder.finish(&mut buf) {
                batch.push(to_msg(f));
            }
            hand_over(&mut batch, shared).await;
            return;
        }
        if !hand_over(&mut batch, shared).await {
            return;
        }
    }
}

/// Moves `batch` into the channel, waiting for room (this is where a TCP
/// connection stops reading under back-pressure). False when the listener
/// stopped.
async fn hand_over(batch: &mut Vec<Received>, shared: &Shared) -> bool {
    while !batch.is_empty() {
        let n = batch.len().min(shared.tx.max_capacity());
        let permits = tokio::select! {
            () = shared.cancel.cancelled() => return false,
            p = shared.tx.reserve_many(n) => match p {
                Ok(p) => p,
                Err(_) => return false,
            },
        };
        for (permit, msg) in permits.zip(batch.drain(..n)) {
            permit.send(msg);
        }
        shared.wake.notify_waiters();
    }
    true
}
