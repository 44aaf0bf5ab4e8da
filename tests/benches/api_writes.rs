//! Local table API writes per second on one sidecar, through gRPC with a
//! client on the same machine: unary `CreateEntry` calls (a few concurrent
//! clients) and the batched `WriteEntries` stream.
//!
//! Run: `cargo bench -p gossamer-tests --bench api_writes` (optionally
//! `-- --entries 200000 --batch 1000 --concurrency 8`). Build the sidecar
//! in release first (`cargo build --release -p gossamer-sidecar`) for
//! figures worth quoting: the harness runs the binary of the profile it
//! finds (see `sidecar_binary`). Prints a Markdown table.

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::time::{Duration, Instant};

use gossamer_proto::tables::v1 as pb;
use gossamer_tests::{free_ports, Flags, Kind, Peer};
use pb::tables_client::TablesClient;
use tonic::transport::Channel;

const NET: &str = "bench";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn connect(port: u16) -> TablesClient<Channel> {
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if let Ok(c) = TablesClient::connect(url.clone()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cannot connect to {url}");
}

async fn unary(port: u16, entries: usize, concurrency: usize) -> f64 {
    let per = entries / concurrency;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let mut client = connect(port).await;
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                client
                    .create_entry(pb::WriteEntryRequest {
                        network: NET.into(),
                        table: "unary".into(),
                        key: format!("c{c}-{i}"),
                        value: vec![b'v'; 64],
                    })
                    .await
                    .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    (per * concurrency) as f64 / start.elapsed().as_secs_f64()
}

async fn batched(port: u16, entries: usize, batch: usize) -> f64 {
    let mut client = connect(port).await;
    let batches: Vec<pb::WriteBatch> = (0..entries.div_ceil(batch))
        .map(|b| pb::WriteBatch {
            writes: (0..batch)
                .map(|i| pb::Write {
                    op: pb::write::Op::Create as i32,
                    network: NET.into(),
                    table: "batched".into(),
                    key: format!("k{}", b * batch + i),
                    value: vec![b'v'; 64],
                })
                .collect(),
        })
        .collect();
    let n: usize = batches.iter().map(|b| b.writes.len()).sum();
    let start = Instant::now();
    let r = client
        .write_entries(tokio_stream::iter(batches))
        .await
        .expect("write_entries")
        .into_inner();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(r.failed, 0, "{:?}", r.failures.first());
    n as f64 / secs
}

fn main() {
    let entries = arg("--entries", 100_000);
    let batch = arg("--batch", 1000);
    let concurrency = arg("--concurrency", 8);
    let port = free_ports(1)[0];
    let peer = Peer::spawn(
        Kind::Rust,
        "bench",
        Flags::new()
            .arg("--api-listen", format!("127.0.0.1:{port}"))
            .arg("--network", NET),
    )
    .expect("sidecar starts");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (u, b) = rt.block_on(async {
        let u = unary(port, entries / 5, concurrency).await;
        let b = batched(port, entries, batch).await;
        (u, b)
    });
    println!("| call | entries | writes/s |");
    println!("|---|---|---|");
    println!(
        "| CreateEntry, unary, {concurrency} concurrent clients | {} | {u:.0} |",
        entries / 5
    );
    println!("| WriteEntries, batches of {batch} | {entries} | {b:.0} |");
    drop(peer);
}
