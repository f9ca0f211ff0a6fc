//! A deliberately tiny HTTP/1.1 server for `GET /metrics` and `GET /healthz`.
//!
//! Scrapers and health probes send one request per connection, so the server reads one
//! bounded request head (8 KiB, 1 s), answers with `Connection: close`, and hangs up.
//! A slow or idle client cannot starve the probe: when all connection slots are
//! taken, the oldest connection still waiting for its request head is shed to make
//! room for the new one (clients that sent their request are never shed).
//! Routing is a pure function of the request bytes ([`route`]) so it is unit-tested
//! without sockets. Anything unparsable gets a 400; the server never panics on input.
//! It replaces the exporter's hyper listener, which would pull hyper and aws-lc onto
//! the gateway for two fixed endpoints.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use super::{Health, MetricsError};

/// Longest request head accepted; scrapers send a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client gets to send its request head: well under a probe's usual 1–5 s
/// timeout, since a real client sends its few hundred bytes at once.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Time a client gets to take the response; a stalled scraper must not pin a task.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once. A scraper and a probe need two; the cap bounds memory
/// if something hammers the port. Past it the oldest idle connection is shed.
const MAX_CONNECTIONS: usize = 32;
/// How often histogram samples are folded into their buckets. The exporter only does
/// this on render, so without it an unscraped daemon would buffer samples forever.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);
/// Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `listen` and serves until `shutdown` resolves. See [`serve_on`].
///
/// # Errors
///
/// [`MetricsError::Bind`] if the address cannot be bound (fatal at startup).
pub async fn serve(
    listen: SocketAddr,
    handle: PrometheusHandle,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MetricsError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| MetricsError::Bind { addr: listen, source })?;
    serve_on(listener, handle, health, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0 and read the address)
/// until `shutdown` resolves; in-flight connections are then dropped. Also runs the
/// recorder's periodic upkeep.
///
/// # Errors
///
/// None at present; the `Result` leaves room for startup checks.
pub async fn serve_on(
    listener: TcpListener,
    handle: PrometheusHandle,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MetricsError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Serving /metrics and /healthz.");
    }
    tokio::pin!(shutdown);
    let mut upkeep = tokio::time::interval(UPKEEP_PERIOD);
    let mut connections = Connections::default();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = upkeep.tick() => handle.run_upkeep(),
            accepted = listener.accept() => {
                accept(accepted, &mut connections, &handle, &health).await;
            }
            // Guarded: `join_next` on an empty set returns `None` at once, which
            // would turn this loop into a busy spin.
            Some(_) = connections.tasks.join_next(), if !connections.tasks.is_empty() => {}
        }
    }
    // Dropping the set aborts connections still in flight.
    Ok(())
}

/// The connections being served, oldest first.
#[derive(Default)]
struct Connections {
    tasks: JoinSet<()>,
    /// Accept order; each with a flag that is set while it still waits for its head.
    order: VecDeque<(AbortHandle, Arc<AtomicBool>)>,
}

impl Connections {
    /// Makes room for one more connection: forgets finished ones, then sheds the
    /// oldest that has not sent its request yet. False if every slot is busy
    /// answering (then the new connection is the one refused).
    fn make_room(&mut self) -> bool {
        self.order.retain(|(task, _)| !task.is_finished());
        if self.order.len() < MAX_CONNECTIONS {
            return true;
        }
        let idle = self
            .order
            .iter()
            .position(|(_, reading)| reading.load(Ordering::Relaxed));
        match idle.and_then(|i| self.order.remove(i)) {
            Some((task, _)) => {
                task.abort();
                true
            }
            None => false,
        }
    }
}

async fn accept(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    connections: &mut Connections,
    handle: &PrometheusHandle,
    health: &Health,
) {
    match accepted {
        Ok((stream, _peer)) if connections.make_room() => {
            let reading = Arc::new(AtomicBool::new(true));
            let task = connections.tasks.spawn(answer(
                stream,
                handle.clone(),
                health.clone(),
                Arc::clone(&reading),
            ));
            connections.order.push_back((task, reading));
        }
        Ok((_stream, peer)) => tracing::debug!(%peer, "Too many metrics connections; closed."),
        Err(error) => {
            // Usually EMFILE; pause so a full fd table does not become a hot loop.
            tracing::warn!(%error, "Cannot accept a metrics connection.");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn answer(mut stream: TcpStream, handle: PrometheusHandle, health: Health, reading: Arc<AtomicBool>) {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await;
    // From here on the client has asked: it is answered, never shed.
    reading.store(false, Ordering::Relaxed);
    let head = match head {
        Ok(Ok(head)) => head,
        Ok(Err(error)) => {
            tracing::debug!(%error, "Metrics client read failed.");
            return;
        }
        Err(_elapsed) => Vec::new(), // answered with a 400 below
    };
    let response = route(&head, &health, || handle.render());
    let write = async {
        stream.write_all(&response.to_bytes()).await?;
        stream.shutdown().await
    };
    if let Ok(Err(error)) = tokio::time::timeout(WRITE_TIMEOUT, write).await {
        tracing::debug!(%error, "Metrics client write failed.");
    }
}

/// Reads until the blank line ending the head, EOF, or [`MAX_HEAD`] bytes. Reading
/// the headers (not just the request line) matters: closing a socket with unread
/// input makes the kernel send RST, which can destroy the response in flight.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0_u8; 1024];
    while head.len() < MAX_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
    }
    Ok(head)
}

/// One HTTP response, before serialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) body: String,
    /// `HEAD` requests get the headers only.
    pub(super) omit_body: bool,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            omit_body: false,
        }
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            503 => "Service Unavailable",
            _ => "Unknown",
        }
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason(),
            self.content_type,
            self.body.len()
        );
        if self.status == 405 {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        if !self.omit_body {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

/// Maps a raw request head to a response. `render` is only called for `/metrics`.
pub(super) fn route(head: &[u8], health: &Health, render: impl FnOnce() -> String) -> Response {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Some((method, target)) = parse_request_line(line) else {
        return Response::text(400, "bad request\n");
    };
    if method != "GET" && method != "HEAD" {
        return Response::text(405, "method not allowed\n");
    }
    let path = target.split('?').next().unwrap_or_default();
    let mut response = match path {
        "/metrics" => Response {
            content_type: METRICS_CONTENT_TYPE,
            ..Response::text(200, render())
        },
        "/healthz" => match health.check() {
            Ok(()) => Response::text(200, "ok\n"),
            Err(reason) => Response::text(503, format!("unhealthy: {reason}\n")),
        },
        _ => Response::text(404, "not found\n"),
    };
    response.omit_body = method == "HEAD";
    response
}

/// `METHOD SP TARGET SP HTTP/1.x`, or `None` for anything else.
fn parse_request_line(line: &[u8]) -> Option<(&str, &str)> {
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed = parts.next().is_none()
        && !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && target.starts_with('/')
        && version.starts_with("HTTP/1.");
    well_formed.then_some((method, target))
}

#[cfg(test)]
mod tests;
