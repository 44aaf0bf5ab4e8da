//! Encryption in the core, in the simulator: joins and probes with a
//! shared key, wrong keys, the verify switches, rotation; and the
//! per-sender decrypt failure count of a lone core.

use super::*;
use crate::keyring::Key;

fn key(fill: u8) -> Key {
    Key::new(&[fill; 32]).unwrap()
}

fn decrypt_failures(sim: &Sim, i: usize) -> u64 {
    sim.node(i).stats().decrypt_failures
}

#[test]
fn a_shared_key_joins_and_every_packet_is_encrypted_with_the_label_as_data() {
    let k = key(1);
    let mut sim = empty(LinkModel::default());
    let keyed = |c: &mut Config| {
        c.keys = vec![k.clone()];
        c.label = "ns/default".into();
    };
    let a = sim.add_node(keyed).unwrap();
    let b = sim.add_node(keyed).unwrap();
    join(&mut sim, b, &[a]);
    sim.run_for(secs(5));
    assert!(all_see_alive(&sim, 2));
    assert_eq!(decrypt_failures(&sim, a) + decrypt_failures(&sim, b), 0);

    // What leaves a node is the label header, then version 1 ciphertext
    // that opens only with the label as additional data.
    let data = sim.command(a, |m, _| {
        m.send_best_effort("n1", b"secret-payload").unwrap();
        std::iter::from_fn(|| m.poll_output())
            .find_map(|o| match o {
                Output::Packet { data, .. } => Some(data),
                _ => None,
            })
            .unwrap()
    });
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
    let mut sim = empty(LinkModel::instant());
    let a = sim.add_node(|c| c.keys = vec![key(1)]).unwrap();
    let b = sim.add_node(|c| c.keys = vec![key(2)]).unwrap();
    join(&mut sim, b, &[a]);
    sim.settle();
    // a could not read b's join and answered with an error, sealed with its
    // own key; b cannot open that either, and names the keys it tried.
    let err = join_errors(&sim, b).expect("the join fails").join(";");
    assert!(err.contains("no installed key could decrypt"), "{err}");
    assert!(err.contains(&key(2).fingerprint().to_string()), "{err}");
    assert!(!err.contains(&key(1).fingerprint().to_string()), "{err}");
    assert_eq!(decrypt_failures(&sim, a), 1);
    sim.run_for(secs(5));
    assert_eq!(sim.node(a).members().len(), 1);
    assert_eq!(sim.node(b).members().len(), 1);
    assert_eq!(
        sim.node(a).decrypt_failures_by_peer(),
        vec![(addr_of(b), 1)]
    );
}

#[test]
fn plain_and_encrypted_nodes_do_not_mix_when_verification_is_on() {
    let mut sim = empty(LinkModel::instant());
    let a = sim.add_node(|c| c.keys = vec![key(1)]).unwrap();
    let b = sim.add_node(|_| {}).unwrap();
    join(&mut sim, b, &[a]);
    sim.settle();
    // a refuses the plain join and answers with an encrypted error, which
    // b, without keys, cannot read.
    let err = join_errors(&sim, b).expect("the join fails").join(";");
    assert!(err.contains("encryption is not configured"), "{err}");
    assert_eq!(decrypt_failures(&sim, a), 1);

    // The other way round: an encrypted stream reaches a node without keys,
    // which answers with a plain error that a refuses to read.
    join(&mut sim, a, &[b]);
    sim.settle();
    let err = join_errors(&sim, a).expect("the join fails").join(";");
    assert!(err.contains("not encrypted"), "{err}");
    assert_eq!(decrypt_failures(&sim, b), 1);
}

#[test]
fn a_running_cluster_moves_from_plain_to_encrypted_in_steps() {
    let mut sim = cluster(4);
    sim.run_for(secs(5));
    assert!(all_see_alive(&sim, 4));
    let k = key(7);
    // 1. Install the key with both switches off: still plain.
    for i in 0..4 {
        sim.command(i, |m, _| {
            m.set_gossip_verify(false, false);
            assert!(m.add_key(k.clone()));
        });
    }
    sim.run_for(secs(5));
    // 2. Encrypt outgoing; plain is still accepted.
    for i in 0..4 {
        sim.command(i, |m, _| m.set_gossip_verify(false, true));
    }
    sim.run_for(secs(5));
    // 3. Refuse plain.
    for i in 0..4 {
        sim.command(i, |m, _| m.set_gossip_verify(true, true));
    }
    sim.run_for(secs(20));
    assert!(all_see_alive(&sim, 4));
    for i in 0..4 {
        assert_eq!(decrypt_failures(&sim, i), 0);
    }
    no_suspicion(&sim);
    // A node that never got the key is now shut out.
    let x = sim.add_node(|_| {}).unwrap();
    join(&mut sim, x, &[0]);
    sim.run_for(secs(1));
    assert!(join_errors(&sim, x).is_some());
}

#[test]
fn rotation_loses_nothing_to_decryption() {
    let old = key(1);
    let new = key(2);
    let mut c = SimConfig::lan(4, 1);
    c.converged = false;
    c.keys = vec![old.clone()];
    let mut sim = Sim::new(c, Instant::now()).unwrap();
    sim.run_for(secs(5));
    assert!(all_see_alive(&sim, 4));
    for step in 0..3 {
        for i in 0..4 {
            sim.command(i, |m, _| match step {
                0 => assert!(m.add_key(new.clone())),
                1 => m.use_key(&new).unwrap(),
                _ => assert!(m.remove_key(&old).unwrap()),
            });
        }
        sim.run_for(secs(5));
    }
    assert!(all_see_alive(&sim, 4));
    for i in 0..4 {
        assert_eq!(decrypt_failures(&sim, i), 0);
        assert_eq!(sim.node(i).keyring_fingerprints(), vec![new.fingerprint()]);
        sim.command(i, |m, _| {
            assert!(matches!(
                m.remove_key(&new),
                Err(crate::keyring::KeyringError::RemovePrimary(_))
            ))
        });
    }
}

/// A lone core fed packets directly: no network involved.
#[test]
fn decrypt_failures_are_counted_per_sender() {
    let now = Instant::now();
    let mut c = Config::lan("n0", addr_of(0));
    c.keys = vec![key(1)];
    let mut m = Membership::new(c, 1, now).unwrap();
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
