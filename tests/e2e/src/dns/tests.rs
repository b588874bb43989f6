// Test code: a failed step fails the test by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

const NAME: &str = "ptc-svc.gateway-e2e.test";

/// A standard query (RD set) for `name` of type `qtype`, with an EDNS OPT record as c-ares adds.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).unwrap());
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    q
}

fn header(reply: &[u8]) -> (u16, u16, u16, u16) {
    let word = |i: usize| u16::from_be_bytes([reply[i], reply[i + 1]]);
    (word(0), word(2), word(4), word(6))
}

/// The A records' addresses of a reply (each answer is 16 bytes after the question).
fn addresses(reply: &[u8], question_len: usize) -> Vec<Ipv4Addr> {
    reply[12 + question_len..]
        .chunks(16)
        .map(|rr| {
            assert_eq!(&rr[..12], &[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
            Ipv4Addr::new(rr[12], rr[13], rr[14], rr[15])
        })
        .collect()
}

#[test]
fn a_query_for_the_name_gets_every_address() {
    let q = query(0x1234, "PTC-svc.gateway-e2e.test", TYPE_A);
    let held = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    let reply = answer(&q, NAME, &held).unwrap();
    assert!(reply.for_name);
    let (id, flags, qd, an) = header(&reply.bytes);
    assert_eq!((id, qd, an), (0x1234, 1, 2));
    assert_eq!(
        flags,
        0x8000 | 0x0400 | 0x0100,
        "response, authoritative, RD echoed"
    );
    let question_len = NAME.len() + 2 + 4;
    assert_eq!(
        &reply.bytes[12..12 + question_len],
        &q[12..12 + question_len]
    );
    assert_eq!(addresses(&reply.bytes, question_len), held);
}

#[test]
fn other_types_get_no_data_and_other_names_nxdomain() {
    let held = [Ipv4Addr::new(127, 0, 0, 2)];
    let aaaa = answer(&query(7, NAME, 28), NAME, &held).unwrap();
    let (_, flags, _, an) = header(&aaaa.bytes);
    assert_eq!((flags & 0x000f, an), (0, 0));
    let other = answer(&query(8, "elsewhere.test", TYPE_A), NAME, &held).unwrap();
    assert!(!other.for_name);
    let (_, flags, _, an) = header(&other.bytes);
    assert_eq!((flags & 0x000f, an), (RCODE_NXDOMAIN, 0));
}

#[test]
fn responses_and_broken_messages_are_dropped() {
    let mut response = query(9, NAME, TYPE_A);
    response[2] |= 0x80;
    assert!(answer(&response, NAME, &[]).is_none());
    let q = query(9, NAME, TYPE_A);
    assert!(answer(&q[..20], NAME, &[]).is_none());
    assert!(answer(&q[..5], NAME, &[]).is_none());
}

#[tokio::test]
async fn answers_over_udp_with_the_addresses_held_at_the_time() {
    let dns = DnsResponder::start(NAME, &[Ipv4Addr::new(127, 0, 0, 2)])
        .await
        .unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let question_len = NAME.len() + 2 + 4;
    let mut buf = [0_u8; 512];
    let mut ask = async |id: u16| {
        socket
            .send_to(&query(id, NAME, TYPE_A), dns.addr())
            .await
            .unwrap();
        let (len, _) = socket.recv_from(&mut buf).await.unwrap();
        addresses(&buf[..len], question_len)
    };
    assert_eq!(ask(1).await, [Ipv4Addr::new(127, 0, 0, 2)]);
    dns.add(Ipv4Addr::new(127, 0, 0, 4));
    dns.add(Ipv4Addr::new(127, 0, 0, 4));
    assert_eq!(
        ask(2).await,
        [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 4)]
    );
    assert_eq!(dns.answered(), 2);
}
