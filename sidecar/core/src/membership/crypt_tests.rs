//! Encryption in the core, on the in-memory network of `tests.rs`: joins
//! and probes with a shared key, wrong keys, the verify switches, rotation.

use super::*;
use crate::keyring::Key;

fn key(fill: u8) -> Key {
    Key::new(&[fill; 32]).unwrap()
}

fn with_keys(keys: &[Key]) -> impl FnOnce(&mut Config) + '_ {
    move |c| c.keys = keys.to_vec()
}

fn join_errors(net: &Net, at: SocketAddr) -> Option<String> {
    net.events.iter().find_map(|(a, e)| match e {
        Event::JoinFinished {
            contacted: 0,
            errors,
            ..
        } if *a == at => Some(errors.join(";")),
        _ => None,
    })
}

fn decrypt_failures(net: &Net, at: SocketAddr) -> u64 {
    net.nodes[&at].stats().decrypt_failures
}

#[test]
fn a_shared_key_joins_and_every_packet_is_encrypted_with_the_label_as_data() {
    let k = key(1);
    let mut net = Net::new();
    let a = net.add(0, |c| {
        c.keys = vec![k.clone()];
        c.label = "ns/default".into();
    });
    let b = net.add(1, |c| {
        c.keys = vec![k.clone()];
        c.label = "ns/default".into();
    });
    let now = net.now;
    net.nodes.get_mut(&b).unwrap().join(&[a], now);
    net.pump();
    net.run(Duration::from_secs(5));
    assert!(net.all_see_alive(2));
    assert_eq!(decrypt_failures(&net, a) + decrypt_failures(&net, b), 0);

    // What leaves a node is the label header, then version 1 ciphertext
    // that opens only with the label as additional data.
    let m = net.nodes.get_mut(&a).unwrap();
    m.send_best_effort("n1", b"secret-payload").unwrap();
    let data = std::iter::from_fn(|| m.poll_output())
        .find_map(|o| match o {
            Output::Packet { data, .. } => Some(data),
            _ => None,
        })
        .unwrap();
    let (label, body) = wire::split_label_header(&data).unwrap();
    assert_eq!(label, "ns/default");
    assert_eq!(body[0], 1, "encryption version 1 on protocol 2+");
    assert!(!data.windows(14).any(|w| w == b"secret-payload"));
    let ring = crate::keyring::Keyring::new([k.clone()]);
    assert!(ring.decrypt(body, b"ns/default").is_ok());
    assert!(ring.decrypt(body, b"").is_err());
}

#[test]
fn a_wrong_key_never_joins_and_both_sides_say_why() {
    let mut net = Net::new();
    let a = net.add(0, with_keys(&[key(1)]));
    let b = net.add(1, with_keys(&[key(2)]));
    let now = net.now;
    net.nodes.get_mut(&b).unwrap().join(&[a], now);
    net.pump();
    let err = join_errors(&net, b).expect("the join fails");
    assert!(err.contains("no installed key could decrypt"), "{err}");
    assert!(err.contains(&key(1).fingerprint().to_string()), "{err}");
    assert_eq!(decrypt_failures(&net, a), 1);
    net.run(Duration::from_secs(5));
    assert_eq!(net.nodes[&a].members().len(), 1);
    assert_eq!(net.nodes[&b].members().len(), 1);
    assert_eq!(net.nodes[&a].decrypt_failures_by_peer(), vec![(b, 1)]);
}

#[test]
fn plain_and_encrypted_nodes_do_not_mix_when_verification_is_on() {
    let mut net = Net::new();
    let a = net.add(0, with_keys(&[key(1)]));
    let b = net.add(1, |_| {});
    let now = net.now;
    net.nodes.get_mut(&b).unwrap().join(&[a], now);
    net.pump();
    let err = join_errors(&net, b).expect("the join fails");
    assert!(err.contains("not encrypted"), "{err}");
    assert_eq!(decrypt_failures(&net, a), 1);

    // The other way round: an encrypted stream reaches a node without keys.
    let now = net.now;
    net.nodes.get_mut(&a).unwrap().join(&[b], now);
    net.pump();
    let err = join_errors(&net, a).expect("the join fails");
    assert!(err.contains("encryption is not configured"), "{err}");
    assert_eq!(decrypt_failures(&net, b), 1);
}

#[test]
fn a_running_cluster_moves_from_plain_to_encrypted_in_steps() {
    let mut net = Net::cluster(4);
    net.run(Duration::from_secs(5));
    assert!(net.all_see_alive(4));
    let k = key(7);
    let all: Vec<SocketAddr> = net.nodes.keys().copied().collect();
    // 1. Install the key with both switches off: still plain.
    for a in &all {
        let m = net.nodes.get_mut(a).unwrap();
        m.set_gossip_verify(false, false);
        assert!(m.add_key(k.clone()));
    }
    net.run(Duration::from_secs(5));
    // 2. Encrypt outgoing; plain is still accepted.
    for a in &all {
        net.nodes.get_mut(a).unwrap().set_gossip_verify(false, true);
    }
    net.run(Duration::from_secs(5));
    // 3. Refuse plain.
    for a in &all {
        net.nodes.get_mut(a).unwrap().set_gossip_verify(true, true);
    }
    net.run(Duration::from_secs(20));
    assert!(net.all_see_alive(4));
    for a in &all {
        assert_eq!(decrypt_failures(&net, *a), 0);
        assert_eq!(net.nodes[a].stats().failed_probes, 0);
    }
    // A node that never got the key is now shut out.
    let x = net.add(9, |_| {});
    let now = net.now;
    net.nodes.get_mut(&x).unwrap().join(&[all[0]], now);
    net.pump();
    assert!(join_errors(&net, x).is_some());
}

#[test]
fn rotation_loses_nothing_to_decryption() {
    let old = key(1);
    let new = key(2);
    let mut net = Net::new();
    for i in 0..4 {
        net.add(i, with_keys(std::slice::from_ref(&old)));
    }
    let all: Vec<SocketAddr> = net.nodes.keys().copied().collect();
    for a in &all[1..] {
        let now = net.now;
        net.nodes.get_mut(a).unwrap().join(&[all[0]], now);
    }
    net.run(Duration::from_secs(5));
    assert!(net.all_see_alive(4));
    for step in 0..3 {
        for a in &all {
            let m = net.nodes.get_mut(a).unwrap();
            match step {
                0 => assert!(m.add_key(new.clone())),
                1 => m.use_key(&new).unwrap(),
                _ => assert!(m.remove_key(&old).unwrap()),
            }
        }
        net.run(Duration::from_secs(5));
    }
    assert!(net.all_see_alive(4));
    for a in &all {
        assert_eq!(decrypt_failures(&net, *a), 0);
        assert_eq!(net.nodes[a].keyring_fingerprints(), vec![new.fingerprint()]);
        assert!(matches!(
            net.nodes.get_mut(a).unwrap().remove_key(&new),
            Err(crate::keyring::KeyringError::RemovePrimary(_))
        ));
    }
}

#[test]
fn decrypt_failures_are_counted_per_sender() {
    let mut net = Net::new();
    let a = net.add(0, with_keys(&[key(1)]));
    let now = net.now;
    let m = net.nodes.get_mut(&a).unwrap();
    let x: SocketAddr = "10.0.0.1:1".parse().unwrap();
    let y: SocketAddr = "10.0.0.2:1".parse().unwrap();
    for _ in 0..5 {
        m.handle_packet(x, &[1; 60], now);
    }
    m.handle_packet(y, b"\x00plain", now);
    assert_eq!(m.stats().decrypt_failures, 6);
    assert_eq!(m.decrypt_failures_by_peer(), vec![(x, 5), (y, 1)]);
    // With verify-incoming off, a plain packet is taken as plain.
    m.set_gossip_verify(false, true);
    m.handle_packet(y, &[0xff], now);
    assert_eq!(m.stats().decrypt_failures, 6);
    assert_eq!(m.stats().malformed, 1);
}
