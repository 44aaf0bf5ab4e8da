//! AES-GCM cost per packet: encrypt and decrypt of 1,400-byte packets
//! (memberlist's UDP budget) with AES-128 and AES-256, next to the plain
//! path (label framing and the copy the core makes of a received body).
//!
//! `cargo bench -p gossamer-core --bench keyring`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use gossamer_core::keyring::{EncryptionVersion, Key, Keyring, NonceRng};
use gossamer_core::wire::{add_label_header, split_label_header};
use rand::SeedableRng;

const PACKET: usize = 1400;
const LABEL: &str = "shop/default";

fn bench(c: &mut Criterion) {
    let body: Vec<u8> = (0..PACKET).map(|i| (i * 31 % 251) as u8).collect();
    let mut g = c.benchmark_group("packet_1400");
    g.throughput(Throughput::Bytes(PACKET as u64));

    g.bench_function("plain/send (label)", |b| {
        b.iter(|| add_label_header(LABEL, black_box(&body)))
    });
    let framed = add_label_header(LABEL, &body);
    g.bench_function("plain/receive (unlabel, copy)", |b| {
        b.iter(|| {
            let (_, rest) = split_label_header(black_box(&framed)).unwrap();
            rest.to_vec()
        })
    });

    for (name, size) in [("aes128", 16usize), ("aes256", 32)] {
        let ring = Keyring::new([Key::new(&vec![0x5a; size]).unwrap()]);
        let mut nonces = NonceRng::seed_from_u64(1);
        g.bench_function(format!("{name}/encrypt v1"), |b| {
            b.iter(|| {
                let mut out = Vec::new();
                ring.encrypt(
                    EncryptionVersion::Unpadded,
                    black_box(&body),
                    LABEL.as_bytes(),
                    &mut nonces,
                    &mut out,
                )
                .unwrap();
                out
            })
        });
        let mut sealed = Vec::new();
        ring.encrypt(
            EncryptionVersion::Unpadded,
            &body,
            LABEL.as_bytes(),
            &mut nonces,
            &mut sealed,
        )
        .unwrap();
        assert_eq!(sealed.len() - body.len(), 29);
        g.bench_function(format!("{name}/decrypt v1"), |b| {
            b.iter(|| ring.decrypt(black_box(&sealed), LABEL.as_bytes()).unwrap())
        });
        let mut padded = Vec::new();
        ring.encrypt(
            EncryptionVersion::Padded,
            &body,
            LABEL.as_bytes(),
            &mut nonces,
            &mut padded,
        )
        .unwrap();
        g.bench_function(format!("{name}/decrypt v0 (padded)"), |b| {
            b.iter(|| ring.decrypt(black_box(&padded), LABEL.as_bytes()).unwrap())
        });
    }

    // During a rotation a packet may be sealed with the second key tried.
    let old = Key::new(&[0x11; 32]).unwrap();
    let new = Key::new(&[0x22; 32]).unwrap();
    let sender = Keyring::new([old.clone()]);
    let receiver = Keyring::new([new, old]);
    let mut nonces = NonceRng::seed_from_u64(2);
    let mut sealed = Vec::new();
    sender
        .encrypt(
            EncryptionVersion::Unpadded,
            &body,
            LABEL.as_bytes(),
            &mut nonces,
            &mut sealed,
        )
        .unwrap();
    g.bench_function("aes256/decrypt v1, second key", |b| {
        b.iter(|| {
            receiver
                .decrypt(black_box(&sealed), LABEL.as_bytes())
                .unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(3))
        .warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
