//! A broker whose CONNACK takes longer than ingest's one-second expiry tick (a slow
//! link, a busy broker): the telemetry connection must come up once, as new, and
//! subscribe. rumqttc's poll is not cancel safe, and a tick that dropped the pending
//! poll made ingest connect again under the same client id, find the first connect's
//! session "present" and subscribe to nothing (fixed in 7da9f4b; the CONNACK held
//! back here makes every tick land mid-connect, so the regression cannot slip by).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use support::{counter, now, wait_for_metrics};

/// How long the relay holds back the broker's first bytes on each connection.
const CONNACK_DELAY: Duration = Duration::from_millis(2500);

/// A TCP relay on a free port to the broker on `broker_port` that holds back what
/// the broker sends first on each connection (its CONNACK) by [`CONNACK_DELAY`].
async fn slow_connack_relay(broker_port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
    let port = listener.local_addr().expect("relay address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, broker_port));
        }
    });
    port
}

async fn relay(client: TcpStream, broker_port: u16) {
    let Ok(broker) = TcpStream::connect(("127.0.0.1", broker_port)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_broker, mut to_broker) = broker.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_broker).await;
    });
    let mut buf = vec![0_u8; 64 * 1024];
    let mut first = true;
    while let Ok(n @ 1..) = from_broker.read(&mut buf).await {
        if std::mem::take(&mut first) {
            tokio::time::sleep(CONNACK_DELAY).await;
        }
        if to_client.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    upstream.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connack_slower_than_the_expiry_tick_still_gives_one_new_subscribed_connection() {
    let mut w = World::new("slowlink", 10).await;
    let relay_port = slow_connack_relay(w.broker.port).await;
    let direct = format!("\nport = {}\n", w.broker.port);
    assert!(w.config.contains(&direct), "{}", w.config);
    w.config = w.config.replace(&direct, &format!("\nport = {relay_port}\n"));
    let mut d = w.daemon();
    // The probe talks to the broker directly; the daemon's birth comes through the relay.
    let mut probe = w.probe().await;
    probe.wait_online(WAIT).await;
    let mut sig = Signal::new(now() - 500.0);
    let topic = w.telemetry("slow-1");
    // Readings only reach the daemon once its telemetry subscription is in place.
    let text = wait_for_metrics(w.metrics_port, "readings through the slow link", |t| {
        counter(t, "anomalyd_readings_total", "") >= 1.0
    });
    let feeding = async {
        loop {
            feed(&probe, &topic, &mut sig, 1, 0.0).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let text = tokio::select! {
        text = text => text,
        () = feeding => unreachable!("feeding never ends"),
    };
    assert!(counter(&text, "anomalyd_readings_total", "") >= 1.0, "{text}");
    let log = d.log_text();
    assert_eq!(
        log.matches("Telemetry connection up.").count(),
        1,
        "one telemetry connection, not one per tick:\n{log}"
    );
    assert!(log.contains("session_present=false"), "{log}");
    assert!(d.alive(), "{log}");
}
