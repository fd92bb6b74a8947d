//! The gym layer's costs: decoding a game state, the client's round trip
//! against a bare hyper request to the same simulated server, and the
//! simulated server's throughput.
//!
//! Before criterion's measurements, the bench prints a report measured in
//! the same run: round-trip percentiles of the client and of bare hyper,
//! interleaved so that both see the same machine, with their ratios; and
//! `/action` requests per second with 16 connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use gymfleet::gym::sim::{LatencyModel, SimConfig, SimServer};
use gymfleet::gym::wire::{self, Endpoint, GameState, InitializeRequest};
use gymfleet::gym::{ClientConfig, GymClient};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use tokio::runtime::Runtime;

#[path = "inputs/game_state.rs"]
mod game_state;
use game_state::largest_state;

async fn start_sim() -> SimServer {
    let config = SimConfig {
        seed: 1,
        latency: LatencyModel::ZERO,
        ..SimConfig::default()
    };
    SimServer::start("127.0.0.1:0".parse().expect("an address"), config)
        .await
        .expect("the sim starts")
}

async fn bare_connection(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the sim accepts");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("an HTTP/1 handshake");
    tokio::spawn(connection);
    sender
}

async fn bare_request(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Bytes,
) {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("a request");
    sender.ready().await.expect("the connection is ready");
    let response = sender.send_request(request).await.expect("an answer");
    response.into_body().collect().await.expect("a body");
}

/// Interleaves client and bare-hyper `/status` round trips and prints
/// their percentiles and ratios.
fn round_trip_report(runtime: &Runtime) {
    runtime.block_on(async {
        let sim = start_sim().await;
        let client = GymClient::new(&sim.url(), ClientConfig::default()).expect("a client");
        client
            .initialize(&InitializeRequest::default())
            .await
            .expect("initialize");
        let mut sender = bare_connection(sim.addr()).await;
        let mut client_micros = Histogram::<u64>::new(3).expect("a histogram");
        let mut bare_micros = Histogram::<u64>::new(3).expect("a histogram");
        for round in 0..25_000 {
            let started = Instant::now();
            client.status().await.expect("status");
            let client_elapsed = started.elapsed();
            let started = Instant::now();
            bare_request(&mut sender, sim.addr(), "GET", "/status", Bytes::new()).await;
            let bare_elapsed = started.elapsed();
            // The first rounds warm up connections and caches.
            if round >= 5_000 {
                client_micros
                    .record(client_elapsed.as_micros().max(1) as u64)
                    .expect("in range");
                bare_micros
                    .record(bare_elapsed.as_micros().max(1) as u64)
                    .expect("in range");
            }
        }
        let (client_p50, bare_p50) = (
            client_micros.value_at_quantile(0.5),
            bare_micros.value_at_quantile(0.5),
        );
        let (client_p99, bare_p99) = (
            client_micros.value_at_quantile(0.99),
            bare_micros.value_at_quantile(0.99),
        );
        println!("round trip (GET /status, 20,000 each, interleaved, microseconds)");
        println!("  client      p50 {client_p50:>5}  p99 {client_p99:>5}");
        println!("  bare hyper  p50 {bare_p50:>5}  p99 {bare_p99:>5}");
        println!(
            "  ratio       p50 {:.2}  p99 {:.2}",
            client_p50 as f64 / bare_p50 as f64,
            client_p99 as f64 / bare_p99 as f64
        );
        sim.shutdown().await.expect("the sim stops");
    });
}

/// Drives `/action` over 16 keep-alive connections for a few seconds and
/// prints requests per second.
fn throughput_report(runtime: &Runtime) {
    runtime.block_on(async {
        let sim = start_sim().await;
        let addr = sim.addr();
        let mut sender = bare_connection(addr).await;
        bare_request(
            &mut sender,
            addr,
            "POST",
            "/initialize",
            Bytes::from_static(b"{}"),
        )
        .await;

        let done = Arc::new(AtomicBool::new(false));
        let completed = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (done, completed) = (Arc::clone(&done), Arc::clone(&completed));
            tasks.push(tokio::spawn(async move {
                let mut sender = bare_connection(addr).await;
                let body = Bytes::from_static(br#"{"action_type": "press_key", "keys": ["a"]}"#);
                while !done.load(Ordering::Relaxed) {
                    bare_request(&mut sender, addr, "POST", "/action", body.clone()).await;
                    completed.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let window = Duration::from_secs(3);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = completed.load(Ordering::Relaxed);
        tokio::time::sleep(window).await;
        let n_requests = completed.load(Ordering::Relaxed) - before;
        done.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.expect("a load task ends");
        }
        println!(
            "simulated server: {:.0} /action requests per second with 16 connections",
            n_requests as f64 / window.as_secs_f64()
        );
        sim.shutdown().await.expect("the sim stops");
    });
}

fn benches(criterion: &mut Criterion) {
    let body = largest_state();
    // A test-only switch: `GYMFLEET_BENCH_SLOWDOWN=decode/largest_game_state`
    // decodes twice per iteration, a 2x regression for checking the gate.
    let doubled = slowed_down("decode/largest_game_state");
    criterion.bench_function("decode/largest_game_state", |bencher| {
        bencher.iter(|| {
            if doubled {
                let _ = std::hint::black_box(wire::decode::<GameState>(
                    Endpoint::Action,
                    200,
                    std::hint::black_box(&body),
                ));
            }
            wire::decode::<GameState>(Endpoint::Action, 200, std::hint::black_box(&body))
        })
    });

    let runtime = Runtime::new().expect("a runtime");
    let (sim, client, addr) = runtime.block_on(async {
        let sim = start_sim().await;
        let client = GymClient::new(&sim.url(), ClientConfig::default()).expect("a client");
        client
            .initialize(&InitializeRequest::default())
            .await
            .expect("initialize");
        let addr = sim.addr();
        (sim, client, addr)
    });
    let mut group = criterion.benchmark_group("round_trip_status");
    group.bench_function("client", |bencher| {
        bencher
            .to_async(&runtime)
            .iter(|| async { client.status().await.expect("status") })
    });
    let sender = runtime.block_on(bare_connection(addr));
    let sender = tokio::sync::Mutex::new(sender);
    group.bench_function("bare_hyper", |bencher| {
        bencher.to_async(&runtime).iter(|| async {
            let mut sender = sender.lock().await;
            bare_request(&mut sender, addr, "GET", "/status", Bytes::new()).await
        })
    });
    group.finish();
    drop(sim);
}

criterion_group!(gym, benches);

/// Whether `GYMFLEET_BENCH_SLOWDOWN` names benchmark `id`; says so on
/// stderr when it does.
fn slowed_down(id: &str) -> bool {
    let slowed = std::env::var("GYMFLEET_BENCH_SLOWDOWN").is_ok_and(|named| named == id);
    if slowed {
        eprintln!("warning: GYMFLEET_BENCH_SLOWDOWN is set: `{id}` does its work twice");
    }
    slowed
}

fn main() {
    let runtime = Runtime::new().expect("a runtime");
    // `--list` prints names only; `GYMFLEET_BENCH_REPORTS=0` skips the
    // printed report, for a short run of criterion's measurements alone.
    let reports = std::env::var_os("GYMFLEET_BENCH_REPORTS").is_none_or(|value| value != "0");
    if reports && !std::env::args().any(|argument| argument == "--list") {
        round_trip_report(&runtime);
        throughput_report(&runtime);
    }
    drop(runtime);
    gym();
    Criterion::default().configure_from_args().final_summary();
}
