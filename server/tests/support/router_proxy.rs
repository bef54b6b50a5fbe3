//! A fault-injecting TCP proxy to put in front of a peer.
//!
//! It forwards bytes both ways and, when told to, misbehaves at a point found by content: a
//! `marker` (for instance the first 32 bytes of an object). This keeps it free of HTTP
//! parsing, and keep-alive connections that carry probes and metadata calls as well are left
//! alone until the object's bytes pass.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the proxy does to the traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    None,
    /// Once: after `marker` went upstream (towards the peer), forward `after` more bytes,
    /// then cut the connection both ways (a peer dying mid-upload).
    CutRequest { marker: Vec<u8>, after: usize },
    /// Every time: flip the byte that follows `marker` on its way back (a corrupt replica).
    FlipResponse { marker: Vec<u8> },
    /// Every time: after `marker` came back, stop forwarding for `pause` (a stalled peer).
    StallResponse { marker: Vec<u8>, pause: Duration },
}

struct Control {
    fault: Mutex<Fault>,
    triggered: AtomicUsize,
}

/// A running proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    control: Arc<Control>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy addr");
        let control = Arc::new(Control {
            fault: Mutex::new(Fault::None),
            triggered: AtomicUsize::new(0),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            control.clone(),
            stop.clone(),
        ));
        Self {
            addr,
            control,
            stop,
            task,
        }
    }

    pub fn set(&self, fault: Fault) {
        *self.control.fault.lock().unwrap() = fault;
    }

    /// How many times a fault fired.
    pub fn triggered(&self) -> usize {
        self.control.triggered.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    control: Arc<Control>,
    stop: CancellationToken,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                conns.spawn(serve(client, upstream, control.clone(), stop.child_token()));
            }
        }
        while conns.try_join_next().is_some() {}
    }
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    control: Arc<Control>,
    stop: CancellationToken,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let cut = stop.child_token();
    let up = pipe(cr, sw, Direction::Up, control.clone(), cut.clone());
    let down = pipe(sr, cw, Direction::Down, control, cut.clone());
    tokio::join!(up, down);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client (the router) to the peer.
    Up,
    /// Peer to the client.
    Down,
}

/// Finds the end of `marker` in `window ++ chunk`; returns the offset in `chunk` just after
/// it, and keeps the last `marker.len() - 1` bytes in `window` for the next call.
fn find_after(marker: &[u8], window: &mut Vec<u8>, chunk: &[u8]) -> Option<usize> {
    if marker.is_empty() {
        return None;
    }
    let mut joined = window.clone();
    joined.extend_from_slice(chunk);
    let found = joined
        .windows(marker.len())
        .position(|w| w == marker)
        .map(|p| p + marker.len() - window.len());
    let keep = marker.len() - 1;
    let start = joined.len().saturating_sub(keep);
    *window = joined[start..].to_vec();
    found
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dir: Direction,
    control: Arc<Control>,
    cut: CancellationToken,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut window = Vec::new();
    // Bytes still to forward before a pending cut, and a pending flip of the next byte.
    let mut cut_in: Option<usize> = None;
    let mut flip_next = false;
    loop {
        let n = tokio::select! {
            () = cut.cancelled() => return,
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => { let _ = to.shutdown().await; return; }
                Ok(n) => n,
            },
        };
        let chunk = &mut buf[..n];
        let fault = control.fault.lock().unwrap().clone();
        let mut stall = None;
        match (&fault, dir) {
            (Fault::CutRequest { marker, after }, Direction::Up) if cut_in.is_none() => {
                if let Some(end) = find_after(marker, &mut window, chunk) {
                    *control.fault.lock().unwrap() = Fault::None;
                    control.triggered.fetch_add(1, Ordering::SeqCst);
                    cut_in = Some(end + after);
                }
            }
            (Fault::FlipResponse { marker }, Direction::Down) => {
                if flip_next && !chunk.is_empty() {
                    chunk[0] ^= 0xff;
                    flip_next = false;
                    control.triggered.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(end) = find_after(marker, &mut window, chunk) {
                    if end < chunk.len() {
                        chunk[end] ^= 0xff;
                        control.triggered.fetch_add(1, Ordering::SeqCst);
                    } else {
                        flip_next = true;
                    }
                }
            }
            (Fault::StallResponse { marker, pause }, Direction::Down)
                if find_after(marker, &mut window, chunk).is_some() =>
            {
                control.triggered.fetch_add(1, Ordering::SeqCst);
                stall = Some(*pause);
            }
            _ => {}
        }
        if let Some(left) = cut_in {
            let send = left.min(chunk.len());
            let _ = to.write_all(&chunk[..send]).await;
            if send < chunk.len() || left == send {
                // Cut both directions at once, like a process that died.
                cut.cancel();
                return;
            }
            cut_in = Some(left - send);
            continue;
        }
        if let Some(pause) = stall {
            tokio::select! {
                () = cut.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
        if to.write_all(chunk).await.is_err() {
            cut.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::find_after;

    #[test]
    fn router_proxy_finds_markers_across_reads() {
        let mut w = Vec::new();
        assert_eq!(find_after(b"abc", &mut w, b"xxab"), None);
        assert_eq!(find_after(b"abc", &mut w, b"cdef"), Some(1));
        let mut w = Vec::new();
        assert_eq!(find_after(b"abc", &mut w, b"abcd"), Some(3));
    }
}
