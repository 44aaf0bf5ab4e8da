//! Encode/decode costs of the memberlist wire codec.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gossamer_core::wire::{
    decode_message, decode_packet, decode_stream, encode_compound, encode_stream, Alive, Message,
    Ping, PushNodeState, PushPull, StreamMessage,
};

fn ping() -> Message {
    Message::Ping(Ping {
        seq_no: 123_456,
        node: "7f9ca1b2c3d4".into(),
        source_addr: vec![10, 1, 2, 3],
        source_port: 7946,
        source_node: "a1b2c3d4e5f6".into(),
    })
}

fn alive(i: u32) -> Message {
    Message::Alive(Alive {
        incarnation: i,
        node: format!("node-{i:08x}"),
        addr: vec![10, 1, (i >> 8) as u8, i as u8],
        port: 7946,
        meta: vec![0x5a; 64],
        vsn: vec![1, 5, 5, 2, 5, 4],
    })
}

fn push_pull(n: u32) -> StreamMessage {
    StreamMessage::PushPull(PushPull {
        join: false,
        nodes: (0..n)
            .map(|i| PushNodeState {
                name: format!("node-{i:08x}"),
                addr: vec![10, 1, (i >> 8) as u8, i as u8],
                port: 7946,
                meta: vec![0x5a; 64],
                incarnation: i,
                state: (i % 4) as u8,
                vsn: vec![1, 5, 5, 2, 5, 4],
            })
            .collect(),
        user_state: vec![7; 4096],
    })
}

fn bench(c: &mut Criterion) {
    let p = ping();
    let p_bytes = p.to_bytes();
    c.bench_function("ping/encode", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(64);
            black_box(&p).encode(&mut out);
            out
        })
    });
    c.bench_function("ping/decode", |b| {
        b.iter(|| decode_message(black_box(&p_bytes)).unwrap())
    });

    let a = alive(42);
    let a_bytes = a.to_bytes();
    c.bench_function("alive/encode", |b| b.iter(|| black_box(&a).to_bytes()));
    c.bench_function("alive/decode", |b| {
        b.iter(|| decode_message(black_box(&a_bytes)).unwrap())
    });

    let msgs: Vec<Message> = (0..10).map(alive).collect();
    let compound = encode_compound(&msgs.iter().map(Message::to_bytes).collect::<Vec<_>>());
    c.bench_function("compound10/encode", |b| {
        b.iter(|| {
            let parts: Vec<Vec<u8>> = black_box(&msgs).iter().map(Message::to_bytes).collect();
            encode_compound(&parts)
        })
    });
    c.bench_function("compound10/decode", |b| {
        b.iter(|| decode_packet(black_box(&compound)).unwrap())
    });

    let pp = push_pull(64);
    let pp_bytes = encode_stream(&pp, false);
    let pp_compressed = encode_stream(&pp, true);
    c.bench_function("pushpull64/encode", |b| {
        b.iter(|| encode_stream(black_box(&pp), false))
    });
    c.bench_function("pushpull64/decode", |b| {
        b.iter(|| decode_stream(black_box(&pp_bytes)).unwrap())
    });
    c.bench_function("pushpull64/encode_compressed", |b| {
        b.iter(|| encode_stream(black_box(&pp), true))
    });
    c.bench_function("pushpull64/decode_compressed", |b| {
        b.iter(|| decode_stream(black_box(&pp_compressed)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
