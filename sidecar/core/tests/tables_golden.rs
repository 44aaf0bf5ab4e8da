//! Golden wire vectors for NetworkDB messages from the Go tool in
//! tests/interop/networkdb-golden, which marshals them with the real
//! libnetwork `networkdb` package (github.com/moby/moby/v2, pinned) and its
//! gogo/protobuf generated types. Its `encode` output is committed as
//! `vectors.json`; this test reads only that file, so it needs no Go
//! toolchain.
//!
//! Checked here: (a) Rust's bytes equal Go's and (b) Go's bytes decode in
//! Rust to the expected messages. The e2e tier
//! (`tests/e2e/golden_vectors.rs`) checks that the Go tool still writes the
//! committed file byte for byte, and (c) that Rust's bytes, and what the
//! core sends, decode in Go and re-marshal to the same bytes.

#[path = "golden/tables.rs"]
mod tables;

use std::path::Path;
use std::sync::OnceLock;

use gossamer_core::tables::codec::{self, Decoded};
use tables::cases;

/// The committed vectors, in the tool's order.
fn go_vectors() -> &'static Vec<(String, Vec<u8>)> {
    static V: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    V.get_or_init(|| {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(tables::VECTORS);
        let json = std::fs::read(&file).unwrap_or_else(|e| {
            panic!(
                "cannot read the committed NetworkDB vectors {}: {e}; regenerate them with `{}`",
                file.display(),
                tables::REGENERATE
            )
        });
        tables::parse(&json)
    })
}

#[test]
fn tables_golden_rust_bytes_equal_go_networkdb_bytes() {
    let go = go_vectors();
    let rust = cases();
    let go_names: Vec<&str> = go.iter().map(|(n, _)| n.as_str()).collect();
    let rust_names: Vec<&str> = rust.iter().map(|(n, _)| *n).collect();
    assert_eq!(go_names, rust_names, "the two sides list the same cases");
    for ((name, g), (_, r)) in go.iter().zip(&rust) {
        assert_eq!(hex::encode(r), hex::encode(g), "case {name}");
    }
}

#[test]
fn tables_golden_go_bytes_decode_in_rust() {
    let rust = cases();
    assert_eq!(
        go_vectors().len(),
        rust.len(),
        "the two sides list the same cases"
    );
    for ((name, g), (_, r)) in go_vectors().iter().zip(&rust) {
        let from_go = codec::decode(g).unwrap_or_else(|e| panic!("case {name}: {e}"));
        let from_rust = codec::decode(r).unwrap();
        assert_eq!(from_go, from_rust, "case {name}");
        // Nested payloads decode too.
        let nested = match &from_go {
            Decoded::Compound(parts) => parts.clone(),
            Decoded::BulkSync(b) => match codec::decode(&b.payload).unwrap() {
                Decoded::Compound(parts) => parts,
                other => panic!("case {name}: bulk sync payload {other:?}"),
            },
            _ => vec![],
        };
        for p in nested {
            assert!(
                matches!(codec::decode(&p), Ok(Decoded::Table { .. })),
                "case {name}"
            );
        }
    }
    let (_, unknown) = &go_vectors()[go_vectors().len() - 1];
    assert_eq!(codec::decode(unknown), Ok(Decoded::Unknown(9)));
}
