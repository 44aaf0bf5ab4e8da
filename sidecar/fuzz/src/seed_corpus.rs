//! Writes a small seed corpus for the `packet` and `stream` targets:
//! `cargo run --bin seed_corpus` (from sidecar/fuzz) fills corpus/packet
//! and corpus/stream.

use std::fs;
use std::path::Path;

use rand::SeedableRng;

use gossamer_core::keyring::{seal_stream_frame, EncryptionVersion, Key, Keyring, NonceRng};
use gossamer_core::wire::{
    add_crc, add_label_header, compress_payload, encode_compound, encode_stream, Ack, Alive, Dead,
    IndirectPing, Message, Nack, Ping, PushNodeState, PushPull, StreamMessage, Suspect,
};

fn main() -> std::io::Result<()> {
    let ping = Message::Ping(Ping {
        seq_no: 7,
        node: "node-b".into(),
        source_addr: vec![10, 0, 0, 1],
        source_port: 7946,
        source_node: "node-a".into(),
    });
    let alive = Message::Alive(Alive {
        incarnation: 3,
        node: "node-a".into(),
        addr: vec![10, 0, 0, 1],
        port: 7946,
        meta: b"meta".to_vec(),
        vsn: vec![1, 5, 5, 2, 5, 4],
    });
    let msgs = [
        ping.clone(),
        alive.clone(),
        Message::IndirectPing(IndirectPing {
            seq_no: 9,
            target: vec![10, 0, 0, 2],
            port: 7946,
            node: "node-c".into(),
            nack: true,
            ..Default::default()
        }),
        Message::Ack(Ack {
            seq_no: 7,
            payload: vec![1, 2, 3],
        }),
        Message::Nack(Nack { seq_no: 9 }),
        Message::Suspect(Suspect {
            incarnation: 1,
            node: "node-c".into(),
            from: "node-a".into(),
        }),
        Message::Dead(Dead {
            incarnation: 1,
            node: "node-c".into(),
            from: "node-a".into(),
        }),
        Message::User(b"user".to_vec()),
    ];
    let parts: Vec<Vec<u8>> = msgs.iter().map(Message::to_bytes).collect();
    let mut packets = parts.clone();
    packets.push(encode_compound(&parts));
    packets.push(compress_payload(&encode_compound(&parts)));
    packets.push(add_crc(&encode_compound(&[
        compress_payload(&parts[0]),
        parts[1].clone(),
    ])));
    packets.push(add_label_header("shop/default", &add_crc(&parts[0])));

    let pp = StreamMessage::PushPull(PushPull {
        join: true,
        nodes: vec![
            PushNodeState {
                name: "node-a".into(),
                addr: vec![10, 0, 0, 1],
                port: 7946,
                meta: b"meta".to_vec(),
                incarnation: 3,
                state: 0,
                vsn: vec![1, 5, 5, 2, 5, 4],
            };
            3
        ],
        user_state: b"state".to_vec(),
    });
    let mut streams = Vec::new();
    for compress in [false, true] {
        streams.push(encode_stream(&pp, compress));
        streams.push(encode_stream(
            &StreamMessage::User(b"hi".to_vec()),
            compress,
        ));
        if let Message::Ping(p) = &ping {
            streams.push(encode_stream(&StreamMessage::Ping(p.clone()), compress));
        }
    }
    streams.push(add_label_header("shop/default", &encode_stream(&pp, false)));

    write(Path::new("corpus/packet"), &packets)?;
    write(Path::new("corpus/stream"), &streams)?;

    // decrypt_packet / decrypt_stream: mode byte, then the input. Sealed
    // with the targets' fixed primary key (32 bytes of 0x42).
    let ring = Keyring::new([Key::new(&[0x42; 32]).expect("32-byte key")]);
    let mut nonces = NonceRng::seed_from_u64(1);
    let mut enc_packets = Vec::new();
    for (mode, label) in [(0u8, ""), (2, "ns/default")] {
        for p in &packets {
            for v in [EncryptionVersion::Unpadded, EncryptionVersion::Padded] {
                let mut seed = vec![mode];
                ring.encrypt(v, p, label.as_bytes(), &mut nonces, &mut seed)
                    .expect("primary key");
                enc_packets.push(seed);
            }
            let mut plain = vec![mode | 1];
            plain.extend_from_slice(p);
            enc_packets.push(plain);
        }
    }
    let mut enc_streams = Vec::new();
    for s in &streams {
        for v in [EncryptionVersion::Unpadded, EncryptionVersion::Padded] {
            let frame =
                seal_stream_frame(&ring, v, s, "ns/default", &mut nonces).expect("primary key");
            let mut seed = vec![0u8];
            seed.extend_from_slice(&add_label_header("ns/default", &frame));
            enc_streams.push(seed);
        }
        let mut plain = vec![1u8];
        plain.extend_from_slice(s);
        enc_streams.push(plain);
    }
    write(Path::new("corpus/decrypt_packet"), &enc_packets)?;
    write(Path::new("corpus/decrypt_stream"), &enc_streams)?;
    println!(
        "wrote {} packet, {} stream, {} decrypt_packet and {} decrypt_stream seeds under corpus/",
        packets.len(),
        streams.len(),
        enc_packets.len(),
        enc_streams.len()
    );
    Ok(())
}

fn write(dir: &Path, items: &[Vec<u8>]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    for (i, b) in items.iter().enumerate() {
        fs::write(dir.join(format!("seed-{i:02}")), b)?;
    }
    Ok(())
}
