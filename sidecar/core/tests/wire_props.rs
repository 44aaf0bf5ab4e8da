//! Property tests for the memberlist wire codec: every message roundtrips,
//! and no decoder panics on arbitrary, truncated or mutated input.

use gossamer_core::wire::encrypt::split_encrypted_stream;
use gossamer_core::wire::{
    add_crc, add_label_header, compress_payload, decode_message, decode_packet, decode_stream,
    decompress_payload, encode_compound, encode_stream, lzw_compress, lzw_decompress,
    split_label_header, split_stream_label, Ack, Alive, Dead, ErrResp, IndirectPing, Message, Nack,
    Ping, PushNodeState, PushPull, StreamMessage, Suspect,
};
use proptest::prelude::*;

// ------------------------------------------------------------- strategies

/// Lengths that cross the fixraw (31/32) and 8-bit (255/256) boundaries.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any::<u8>(), 250..300),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9./-]{0,40}", any::<String>(), "[a-z]{250,300}",]
}

fn addr() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![]),
        prop::collection::vec(any::<u8>(), 4),
        prop::collection::vec(any::<u8>(), 16),
    ]
}

fn ping() -> impl Strategy<Value = Ping> {
    (any::<u32>(), string(), addr(), any::<u16>(), string()).prop_map(
        |(seq_no, node, source_addr, source_port, source_node)| Ping {
            seq_no,
            node,
            source_addr,
            source_port,
            source_node,
        },
    )
}

fn ack() -> impl Strategy<Value = Ack> {
    (any::<u32>(), bytes()).prop_map(|(seq_no, payload)| Ack { seq_no, payload })
}

fn push_node() -> impl Strategy<Value = PushNodeState> {
    (
        string(),
        addr(),
        any::<u16>(),
        bytes(),
        any::<u32>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..7),
    )
        .prop_map(
            |(name, addr, port, meta, incarnation, state, vsn)| PushNodeState {
                name,
                addr,
                port,
                meta,
                incarnation,
                state,
                vsn,
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ping().prop_map(Message::Ping),
        (
            any::<u32>(),
            addr(),
            any::<u16>(),
            string(),
            any::<bool>(),
            addr(),
            any::<u16>(),
            string()
        )
            .prop_map(|(seq_no, target, port, node, nack, sa, sp, sn)| {
                Message::IndirectPing(IndirectPing {
                    seq_no,
                    target,
                    port,
                    node,
                    nack,
                    source_addr: sa,
                    source_port: sp,
                    source_node: sn,
                })
            }),
        ack().prop_map(Message::Ack),
        any::<u32>().prop_map(|seq_no| Message::Nack(Nack { seq_no })),
        string().prop_map(|error| Message::Err(ErrResp { error })),
        (any::<u32>(), string(), string()).prop_map(|(incarnation, node, from)| {
            Message::Suspect(Suspect {
                incarnation,
                node,
                from,
            })
        }),
        (
            any::<u32>(),
            string(),
            addr(),
            any::<u16>(),
            bytes(),
            prop::collection::vec(any::<u8>(), 0..7)
        )
            .prop_map(|(incarnation, node, addr, port, meta, vsn)| {
                Message::Alive(Alive {
                    incarnation,
                    node,
                    addr,
                    port,
                    meta,
                    vsn,
                })
            }),
        (any::<u32>(), string(), string()).prop_map(|(incarnation, node, from)| {
            Message::Dead(Dead {
                incarnation,
                node,
                from,
            })
        }),
        bytes().prop_map(Message::User),
    ]
}

fn stream_message() -> impl Strategy<Value = StreamMessage> {
    prop_oneof![
        ping().prop_map(StreamMessage::Ping),
        ack().prop_map(StreamMessage::Ack),
        string().prop_map(|error| StreamMessage::Err(ErrResp { error })),
        bytes().prop_map(StreamMessage::User),
        (
            any::<bool>(),
            prop::collection::vec(push_node(), 0..8),
            bytes()
        )
            .prop_map(|(join, nodes, user_state)| {
                StreamMessage::PushPull(PushPull {
                    join,
                    nodes,
                    user_state,
                })
            }),
    ]
}

/// How a list of messages is packed into a packet.
#[derive(Debug, Clone, Copy)]
enum Packing {
    Single,
    Compound,
    Compressed,
    CompressedCompound,
    CompoundOfCompressed,
}

fn packing() -> impl Strategy<Value = Packing> {
    prop_oneof![
        Just(Packing::Single),
        Just(Packing::Compound),
        Just(Packing::Compressed),
        Just(Packing::CompressedCompound),
        Just(Packing::CompoundOfCompressed),
    ]
}

fn pack(msgs: &[Message], how: Packing) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = msgs.iter().map(Message::to_bytes).collect();
    match how {
        Packing::Single => parts[0].clone(),
        Packing::Compound => encode_compound(&parts),
        Packing::Compressed => compress_payload(&parts[0]),
        Packing::CompressedCompound => compress_payload(&encode_compound(&parts)),
        Packing::CompoundOfCompressed => encode_compound(
            &parts
                .iter()
                .map(|p| compress_payload(p))
                .collect::<Vec<_>>(),
        ),
    }
}

/// Every decoder that reads bytes from the network. None may panic.
fn feed_everything(buf: &[u8]) {
    let _ = decode_message(buf);
    let _ = decode_packet(buf);
    if let Ok((_, rest)) = split_label_header(buf) {
        let _ = decode_packet(rest);
    }
    let _ = decode_stream(buf);
    if let Ok(Some((_, n))) = split_stream_label(buf) {
        let _ = decode_stream(&buf[n..]);
    }
    let _ = decompress_payload(buf);
    let _ = lzw_decompress(buf, 1 << 20);
    let _ = split_encrypted_stream(buf);
}

// ------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn message_roundtrip(m in message()) {
        let b = m.to_bytes();
        prop_assert_eq!(m.encoded_len(), b.len());
        prop_assert_eq!(decode_message(&b).unwrap(), m);
    }

    #[test]
    fn packet_roundtrip(
        msgs in prop::collection::vec(message(), 1..12),
        how in packing(),
        crc in any::<bool>(),
        label in prop_oneof![Just(String::new()), "[a-z/]{1,255}"],
    ) {
        let msgs = match how {
            Packing::Single | Packing::Compressed => msgs[..1].to_vec(),
            _ => msgs,
        };
        let mut b = pack(&msgs, how);
        if crc {
            b = add_crc(&b);
        }
        let b = add_label_header(&label, &b);
        let (got_label, rest) = split_label_header(&b).unwrap();
        prop_assert_eq!(got_label, label.as_str());
        let got: Vec<Message> = decode_packet(rest)
            .unwrap()
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn stream_roundtrip(m in stream_message(), compress in any::<bool>(), extra in bytes()) {
        let mut b = encode_stream(&m, compress);
        let n = b.len();
        for cut in [0, 1, n / 3, n / 2, n - 1] {
            prop_assert_eq!(decode_stream(&b[..cut]).unwrap(), None);
        }
        b.extend_from_slice(&extra);
        prop_assert_eq!(decode_stream(&b).unwrap(), Some((m, n)));
    }

    #[test]
    fn lzw_roundtrip(data in prop::collection::vec(0u8..4, 0..20_000)) {
        prop_assert_eq!(lzw_decompress(&lzw_compress(&data), usize::MAX).unwrap(), data);
    }

    #[test]
    fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..512)) {
        feed_everything(&buf);
    }

    #[test]
    fn arbitrary_bytes_after_each_type_byte_never_panic(
        ty in prop::sample::select(vec![0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 244]),
        rest in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut buf = vec![ty];
        buf.extend_from_slice(&rest);
        feed_everything(&buf);
    }

    #[test]
    fn truncations_never_panic(
        msgs in prop::collection::vec(message(), 1..6),
        how in packing(),
        s in stream_message(),
        compress in any::<bool>(),
    ) {
        let msgs = match how {
            Packing::Single | Packing::Compressed => msgs[..1].to_vec(),
            _ => msgs,
        };
        let packet = add_crc(&pack(&msgs, how));
        for cut in 0..packet.len().min(300) {
            feed_everything(&packet[..cut]);
        }
        let stream = encode_stream(&s, compress);
        for cut in (0..stream.len()).step_by(1 + stream.len() / 200) {
            feed_everything(&stream[..cut]);
            prop_assert_eq!(decode_stream(&stream[..cut]).unwrap(), None);
        }
    }

    #[test]
    fn mutations_never_panic(
        m in stream_message(),
        compress in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut b = encode_stream(&m, compress);
        for (i, v) in flips {
            let i = i.index(b.len());
            b[i] = v;
        }
        feed_everything(&b);
    }
}
