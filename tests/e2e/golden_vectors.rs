//! The Go side of the golden vectors. The core's tests
//! (`sidecar/core/tests/{wire,keyring,tables}_golden.rs`) read only the
//! committed vector files; this test builds the Go tools that wrote them
//! (tests/interop/golden, tests/interop/networkdb-golden) and checks that
//!
//! - each tool still writes its committed file byte for byte (so a change
//!   of the Go side, or of a pinned Go module, shows up here with the
//!   command to regenerate), and
//! - what Rust writes decodes and opens in Go: every wire case, every
//!   encryption case sealed with a random nonce, every NetworkDB case and
//!   what the NetworkDB core sends.
//!
//! A missing `go` toolchain or a failed build fails the test; it never
//! skips.

#[path = "../../sidecar/core/tests/golden/crypt.rs"]
mod crypt;
#[path = "../../sidecar/core/tests/golden/tables.rs"]
mod tables;
#[path = "../../sidecar/core/tests/golden/wire.rs"]
mod wire;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use gossamer_core::keyring::NonceRng;
use gossamer_tests::{golden_tool_binary, networkdb_golden_binary, workspace_root};
use rand::SeedableRng;
use serde_json::{json, Value};

/// Runs `tool mode`, feeding `input` on stdin; returns stdout.
///
/// # Panics
/// If the tool cannot start or exits non-zero (its stderr is shown).
fn run(tool: &Path, mode: &str, input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new(tool)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} {mode}: {e}", tool.display()));
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        if let Some(input) = input {
            stdin.write_all(input).expect("write the tool's input");
        }
    }
    let out = child.wait_with_output().expect("wait for the tool");
    assert!(
        out.status.success(),
        "{} {mode} failed ({}):\n{}",
        tool.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Fails unless the committed file `rel` (relative to the workspace root)
/// equals `fresh` byte for byte, naming the first differing line and the
/// command that regenerates the file.
fn assert_committed(rel: &str, fresh: &[u8], regenerate: &str) {
    let file = workspace_root().join(rel);
    let committed = std::fs::read(&file).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; create it with `{regenerate}`",
            file.display()
        )
    });
    if committed == fresh {
        return;
    }
    let old = String::from_utf8_lossy(&committed);
    let new = String::from_utf8_lossy(fresh);
    let (old_lines, new_lines): (Vec<&str>, Vec<&str>) =
        (old.lines().collect(), new.lines().collect());
    let first = old_lines
        .iter()
        .zip(&new_lines)
        .position(|(a, b)| a != b)
        .unwrap_or(old_lines.len().min(new_lines.len()));
    let differing = (0..old_lines.len().max(new_lines.len()))
        .filter(|&i| old_lines.get(i) != new_lines.get(i))
        .count();
    let clip = |s: Option<&&str>| match s {
        None => "<end of file>".to_string(),
        Some(s) if s.len() > 160 => format!("{}…", &s[..160]),
        Some(s) => s.to_string(),
    };
    panic!(
        "{rel} is stale: the Go tool now writes something else \
         ({} bytes committed, {} bytes fresh; {differing} lines differ).\n\
         first difference at line {}:\n  committed: {}\n  fresh:     {}\n\
         If the change is intended, regenerate the file from the workspace root with\n  {regenerate}\n\
         then run `cargo test -p gossamer-core` and commit it.",
        committed.len(),
        fresh.len(),
        first + 1,
        clip(old_lines.get(first)),
        clip(new_lines.get(first)),
    );
}

// ------------------------------------------------ committed == regenerated

#[test]
fn wire_vectors_file_is_what_the_go_tool_writes() {
    let fresh = run(&golden_tool_binary(), "encode", None);
    assert_committed(wire::VECTORS, &fresh, wire::REGENERATE);
}

#[test]
fn crypt_vectors_file_is_what_the_go_tool_writes() {
    let fresh = run(&golden_tool_binary(), "encrypt", None);
    // Deterministic: the nonces derive from the case names.
    assert_eq!(
        fresh,
        run(&golden_tool_binary(), "encrypt", None),
        "two runs of `golden encrypt` differ"
    );
    assert_committed(crypt::VECTORS, &fresh, crypt::REGENERATE);
}

#[test]
fn networkdb_vectors_file_is_what_the_go_tool_writes() {
    let fresh = run(&networkdb_golden_binary(), "encode", None);
    assert_committed(tables::VECTORS, &fresh, tables::REGENERATE);
}

// ------------------------------------------------------------ wire: Rust -> Go

/// Runs `golden decode` on `vectors`; returns name -> decoded JSON.
fn go_decode(vectors: &[wire::Vector]) -> BTreeMap<String, Value> {
    let input = serde_json::to_vec(vectors).unwrap();
    let out = run(&golden_tool_binary(), "decode", Some(&input));
    let out: Vec<Value> = serde_json::from_slice(&out).expect("golden decode writes JSON");
    out.into_iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["decoded"].clone(),
            )
        })
        .collect()
}

#[test]
fn wire_rust_bytes_decode_in_go() {
    let cases = wire::cases();
    let decoded = go_decode(&wire::rust_vectors());
    for (name, case) in &cases {
        let got = decoded
            .get(*name)
            .unwrap_or_else(|| panic!("Go returned nothing for {name}"));
        assert_eq!(
            got,
            &wire::render_case(case),
            "{name}: Go decode of Rust bytes"
        );
    }
}

#[test]
fn wire_go_bytes_decode_in_go() {
    // Sanity check of the tool itself and of the JSON rendering the test
    // above compares with.
    let committed = std::fs::read(workspace_root().join(wire::VECTORS)).unwrap();
    let vectors: Vec<wire::Vector> = wire::parse(&committed).into_values().collect();
    let decoded = go_decode(&vectors);
    for (name, case) in wire::cases() {
        assert_eq!(
            decoded[name],
            wire::render_case(&case),
            "{name}: Go decode of Go bytes"
        );
    }
}

// ------------------------------------------------------ encryption: Rust -> Go

fn crypt_vectors() -> Vec<Value> {
    crypt::parse(&std::fs::read(workspace_root().join(crypt::VECTORS)).unwrap())
}

fn go_decrypt(vectors: &[Value]) -> Vec<Value> {
    let input = serde_json::to_vec(vectors).unwrap();
    let out = run(&golden_tool_binary(), "decrypt", Some(&input));
    serde_json::from_slice(&out).expect("golden decrypt writes JSON")
}

#[test]
fn crypt_rust_ciphertext_with_random_nonces_opens_in_go() {
    let mut rng = NonceRng::seed_from_u64(99);
    let mine: Vec<Value> = crypt_vectors()
        .iter()
        .map(|v| {
            let mut w = v.clone();
            w["hex"] = json!(hex::encode(crypt::rust_encrypt(v, &mut rng)));
            assert_ne!(w["hex"], v["hex"], "a fresh nonce changes the bytes");
            w
        })
        .collect();
    let out = go_decrypt(&mine);
    assert_eq!(out.len(), mine.len());
    for (v, r) in mine.iter().zip(&out) {
        assert_eq!(r["name"], v["name"]);
        assert_eq!(
            r["error"],
            Value::Null,
            "{}: Go could not open Rust's bytes",
            v["name"]
        );
        assert_eq!(r["plain"], v["plain"], "{}", v["name"]);
    }
}

#[test]
fn crypt_go_opens_its_own_vectors_and_refuses_wrong_keys_and_labels() {
    let vectors = crypt_vectors();
    let out = go_decrypt(&vectors);
    for (v, r) in vectors.iter().zip(&out) {
        assert_eq!(
            r["plain"], v["plain"],
            "{}: Go opens its own vector",
            v["name"]
        );
    }
    let v = vectors
        .iter()
        .find(|v| v["name"] == "packet-v1-aes256-labeltrue")
        .unwrap();
    let mut relabelled = v.clone();
    relabelled["label"] = json!("other/cluster");
    let mut wrong_key = v.clone();
    wrong_key["key"] = json!(hex::encode([0x11; 32]));
    let out = go_decrypt(&[wrong_key, relabelled]);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|r| r["error"].is_string()), "{out:?}");
}

// -------------------------------------------------------- NetworkDB: Rust -> Go

/// Runs `networkdb-golden decode` on (name, bytes); returns what Go
/// re-marshalled, in order.
fn go_remarshal(msgs: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let input = json!(msgs
        .iter()
        .map(|(n, b)| json!({"name": n, "type": "gossip", "hex": hex::encode(b)}))
        .collect::<Vec<_>>());
    let out = run(
        &networkdb_golden_binary(),
        "decode",
        Some(input.to_string().as_bytes()),
    );
    let out: Value = serde_json::from_slice(&out).expect("networkdb-golden decode writes JSON");
    out.as_array()
        .expect("a list")
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_string(),
                o["hex"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn tables_rust_bytes_decode_in_go() {
    let cases: Vec<(String, Vec<u8>)> = tables::cases()
        .into_iter()
        .map(|(n, b)| (n.to_string(), b))
        .collect();
    let out = go_remarshal(&cases);
    assert_eq!(out.len(), cases.len());
    for ((got_name, got), (name, r)) in out.iter().zip(&cases) {
        assert_eq!(got_name, name);
        assert_eq!(got, &hex::encode(r), "case {name}");
    }
}

#[test]
fn tables_core_output_decodes_in_go() {
    use gossamer_core::tables::{Config, Output, Tables};
    use std::time::Duration;

    #[allow(clippy::disallowed_methods)] // the virtual-time origin
    let now = std::time::Instant::now();
    let mut n1 = Tables::new(Config::new("7f9ca1b2c3d4"), 1, now).unwrap();
    let mut n2 = Tables::new(Config::new("0a1b2c3d4e5f"), 2, now).unwrap();
    n1.member_joined("0a1b2c3d4e5f", "10.0.0.2:7946".parse().unwrap(), now);
    n2.member_joined("7f9ca1b2c3d4", "10.0.0.1:7946".parse().unwrap(), now);
    n2.join_network("3f2a9c1e7b04", now).unwrap();
    n1.merge_remote_state(&n2.local_state(true), true, now);
    n1.join_network("3f2a9c1e7b04", now).unwrap();
    for (i, k) in ["10.1.2.3", "10.1.2.4", "10.1.2.5"].iter().enumerate() {
        n1.create_entry("3f2a9c1e7b04", "backends", k, vec![i as u8; 30], now)
            .unwrap();
    }
    n1.delete_entry("3f2a9c1e7b04", "backends", "10.1.2.4", now)
        .unwrap();
    n1.handle_timeout(now + Duration::from_secs(60));
    let mut msgs = vec![("local_state".to_string(), n1.local_state(false))];
    msgs.extend(
        n1.get_broadcasts(2, 1400)
            .into_iter()
            .map(|m| ("broadcast".to_string(), m)),
    );
    while let Some(out) = n1.poll_output() {
        if let Output::Send { data, reliable, .. } = out {
            let kind = if reliable { "bulk_sync" } else { "gossip" };
            msgs.push((kind.to_string(), data));
        }
    }
    for kind in ["local_state", "broadcast", "bulk_sync", "gossip"] {
        assert!(msgs.iter().any(|(k, _)| k == kind), "no {kind} output");
    }
    let named: Vec<(String, Vec<u8>)> = msgs
        .into_iter()
        .enumerate()
        .map(|(i, (k, b))| (format!("{k}-{i}"), b))
        .collect();
    let out = go_remarshal(&named);
    assert_eq!(out.len(), named.len());
    for ((got_name, got), (name, b)) in out.iter().zip(&named) {
        assert_eq!(got_name, name);
        assert_eq!(got, &hex::encode(b), "{name}");
    }
}
