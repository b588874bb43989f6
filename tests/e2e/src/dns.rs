//! A tiny authoritative DNS responder on loopback, standing in for a Kubernetes headless Service:
//! it answers A queries for one name with the addresses it holds right now, so replicas can come
//! and go while Envoy's STRICT_DNS cluster polls it. AAAA and other types get an empty answer,
//! other names NXDOMAIN. UDP only (answers stay far below 512 bytes), TTL 0, no recursion.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u16 = 3;
const RCODE_NOTIMP: u16 = 4;

/// A running responder; stops when dropped.
pub struct DnsResponder {
    addr: SocketAddr,
    name: String,
    addresses: Arc<Mutex<Vec<Ipv4Addr>>>,
    answered: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl DnsResponder {
    /// Serves `name` (case-insensitive, no trailing dot) with `addresses` on `127.0.0.1:0`.
    pub async fn start(name: &str, addresses: &[Ipv4Addr]) -> Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .context("binding the DNS responder")?;
        let addr = socket.local_addr()?;
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let addresses = Arc::new(Mutex::new(addresses.to_vec()));
        let answered = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(serve(
            socket,
            name.clone(),
            Arc::clone(&addresses),
            Arc::clone(&answered),
        ));
        Ok(Self {
            addr,
            name,
            addresses,
            answered,
            task,
        })
    }

    /// Where it listens (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The one name it answers for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds `address` to every later answer for the name.
    pub fn add(&self, address: Ipv4Addr) {
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }

    /// The addresses answered right now.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        self.addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many A queries for the name it has answered (a poller's progress).
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    socket: UdpSocket,
    name: String,
    addresses: Arc<Mutex<Vec<Ipv4Addr>>>,
    answered: Arc<AtomicU64>,
) {
    let mut buf = [0_u8; 1500];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let current = addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(reply) = answer(&buf[..len], &name, &current) else {
            continue;
        };
        if reply.for_name && reply.qtype == TYPE_A {
            answered.fetch_add(1, Ordering::SeqCst);
        }
        let _ = socket.send_to(&reply.bytes, peer).await;
    }
}

/// The response to one query message.
#[derive(Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    /// The question named the served name.
    pub for_name: bool,
    pub qtype: u16,
}

/// The response to the DNS query `query` (RFC 1035 wire format), or `None` for a message that
/// is not a well-formed single-question query (dropped, as a server would).
pub fn answer(query: &[u8], name: &str, addresses: &[Ipv4Addr]) -> Option<Reply> {
    let header = query.get(..12)?;
    let id = [header[0], header[1]];
    let flags = u16::from_be_bytes([header[2], header[3]]);
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    if flags & 0x8000 != 0 || qdcount != 1 {
        return None;
    }
    // QNAME: length-prefixed labels up to the root label (queries carry no compression).
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = usize::from(*query.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let fixed = query.get(pos..pos + 4)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let question = &query[12..pos + 4];

    let opcode = flags & 0x7800;
    let for_name = labels.join(".") == name;
    let (rcode, answers): (u16, &[Ipv4Addr]) = if opcode != 0 {
        (RCODE_NOTIMP, &[])
    } else if !for_name {
        (RCODE_NXDOMAIN, &[])
    } else if qtype == TYPE_A && qclass == CLASS_IN {
        (0, addresses)
    } else {
        (0, &[])
    };
    // QR, the query's opcode, AA, the query's RD; no RA.
    let flags = 0x8000 | opcode | 0x0400 | (flags & 0x0100) | rcode;
    let ancount = u16::try_from(answers.len()).ok()?;
    let mut bytes = Vec::with_capacity(12 + question.len() + answers.len() * 16);
    bytes.extend_from_slice(&id);
    bytes.extend_from_slice(&flags.to_be_bytes());
    bytes.extend_from_slice(&1_u16.to_be_bytes());
    bytes.extend_from_slice(&ancount.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    bytes.extend_from_slice(question);
    for address in answers {
        // A pointer to the question's name at offset 12, type A, class IN, TTL 0, 4 bytes.
        bytes.extend_from_slice(&[0xc0, 0x0c]);
        bytes.extend_from_slice(&TYPE_A.to_be_bytes());
        bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
        bytes.extend_from_slice(&0_u32.to_be_bytes());
        bytes.extend_from_slice(&4_u16.to_be_bytes());
        bytes.extend_from_slice(&address.octets());
    }
    Some(Reply {
        bytes,
        for_name,
        qtype,
    })
}

#[cfg(test)]
mod tests;
