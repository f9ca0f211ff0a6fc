use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::*;
use crate::metrics::{install, names};

fn build_health(healthy: bool) -> Health {
    let health = Health::new();
    health.set_broker_connected(healthy);
    health.set_detector_alive(true);
    health
}

#[test]
fn route_answers_each_case() {
    struct Case {
        name: &'static str,
        head: &'static [u8],
        healthy: bool,
        status: u16,
        body_contains: &'static str,
    }
    #[rustfmt::skip]
    let cases = [
        Case { name: "metrics", head: b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", healthy: true, status: 200, body_contains: "rendered" },
        Case { name: "metrics with query", head: b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", healthy: true, status: 200, body_contains: "rendered" },
        Case { name: "healthy", head: b"GET /healthz HTTP/1.1\r\n\r\n", healthy: true, status: 200, body_contains: "ok" },
        Case { name: "unhealthy", head: b"GET /healthz HTTP/1.1\r\n\r\n", healthy: false, status: 503, body_contains: "broker disconnected" },
        Case { name: "unknown path", head: b"GET /nope HTTP/1.1\r\n\r\n", healthy: true, status: 404, body_contains: "not found" },
        Case { name: "post", head: b"POST /metrics HTTP/1.1\r\n\r\n", healthy: true, status: 405, body_contains: "" },
        Case { name: "empty", head: b"", healthy: true, status: 400, body_contains: "" },
        Case { name: "garbage", head: b"\x00\xff\xfe garbage", healthy: true, status: 400, body_contains: "" },
        Case { name: "no version", head: b"GET /metrics\r\n\r\n", healthy: true, status: 400, body_contains: "" },
        Case { name: "extra spaces", head: b"GET  /metrics HTTP/1.1\r\n\r\n", healthy: true, status: 400, body_contains: "" },
        Case { name: "http2 preface", head: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", healthy: true, status: 400, body_contains: "" },
    ];
    for case in cases {
        let response = route(case.head, &build_health(case.healthy), || "rendered".to_owned());
        assert_eq!(response.status, case.status, "case {}", case.name);
        assert!(
            response.body.contains(case.body_contains),
            "case {}: {:?}",
            case.name,
            response.body
        );
    }
}

#[test]
fn head_request_omits_the_body_but_keeps_its_length() {
    let response = route(
        b"HEAD /healthz HTTP/1.1\r\n\r\n",
        &build_health(true),
        String::new,
    );
    let bytes = String::from_utf8(response.to_bytes()).expect("utf-8");
    assert!(bytes.contains("Content-Length: 3\r\n"), "{bytes}");
    assert!(bytes.ends_with("\r\n\r\n"), "{bytes}");
}

/// Starts the server on an ephemeral port; dropping the sender stops it.
async fn start(health: Health) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let handle = install().expect("install");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async {
            let _ = stop_rx.await;
        };
        serve_on(listener, handle, health, shutdown).await.expect("serve");
    });
    (addr, stop_tx, server)
}

async fn send(addr: SocketAddr, request: &[u8]) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        String::from_utf8_lossy(&response).into_owned()
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("server answered in time")
}

#[tokio::test]
async fn server_answers_metrics_health_and_not_found() {
    let health = build_health(true);
    let (addr, stop_tx, server) = start(health.clone()).await;
    metrics::counter!(names::RECONNECTS).increment(1);

    let metrics = send(addr, b"GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n").await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(
        metrics.contains("Content-Type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    assert!(metrics.contains("anomalyd_reconnects_total"), "{metrics}");

    let ok = send(addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(
        ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("ok\n"),
        "{ok}"
    );

    health.set_detector_alive(false);
    let unhealthy = send(addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(unhealthy.starts_with("HTTP/1.1 503 "), "{unhealthy}");
    assert!(unhealthy.contains("detector not running"), "{unhealthy}");

    let missing = send(addr, b"GET /favicon.ico HTTP/1.1\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");

    drop(stop_tx);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops")
        .expect("no panic");
}

#[tokio::test]
async fn server_survives_garbage_and_oversized_requests() {
    let (addr, stop_tx, server) = start(build_health(true)).await;

    let garbage = send(addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\n\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");

    // Longer than MAX_HEAD with no line end: answered (400) after the bound, not read forever.
    let huge = vec![b'A'; MAX_HEAD * 2];
    let oversized = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.write_all(&huge).await; // the server may hang up mid-write
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        response
    };
    let response = tokio::time::timeout(Duration::from_secs(10), oversized)
        .await
        .expect("in time");
    assert!(response.is_empty() || response.starts_with(b"HTTP/1.1 400 "));

    // A client that connects and says nothing is cut off after READ_TIMEOUT.
    let silent = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        response
    };
    let response = tokio::time::timeout(READ_TIMEOUT * 3, silent)
        .await
        .expect("cut off");
    assert!(response.starts_with(b"HTTP/1.1 400 "));

    let ok = send(addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");

    drop(stop_tx);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops")
        .expect("no panic");
}

proptest::proptest! {
    #[test]
    fn route_never_panics_on_arbitrary_bytes(head in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let response = route(&head, &build_health(true), String::new);
        proptest::prop_assert!([200, 400, 404, 405].contains(&response.status));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_slow_clients_cannot_starve_the_health_probe() {
    let (addr, _stop, _server) = start(build_health(true)).await;
    // 64 clients that connect and never send a request (a port scanner, a stuck
    // scraper, an attacker); twice the connection cap.
    let mut slow = Vec::new();
    for _ in 0..64 {
        slow.push(TcpStream::connect(addr).await.expect("slow client connects"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut failed = 0;
    for _ in 0..20 {
        let probe = async {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            stream.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").await.ok()?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.ok()?;
            Some(response)
        };
        // A probe's timeout: well under the slow clients' read deadline.
        match tokio::time::timeout(Duration::from_millis(500), probe).await {
            Ok(Some(r)) if r.starts_with(b"HTTP/1.1 200") => {}
            _ => failed += 1,
        }
        // More slow clients keep arriving between probes.
        slow.push(TcpStream::connect(addr).await.expect("slow client connects"));
    }
    assert_eq!(failed, 0, "health probes failed behind slow clients");
}
