//! Which connection a datagram is for. Every connection shares one socket.
//!
//! A datagram from an address already seen goes to that address's connection. A STUN
//! message carries `USERNAME = <our ufrag>:<their ufrag>`; every connection has its own
//! ufrag, so a STUN message is routed by it, and teaches us its address. Anything else from
//! an unknown address is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::PcId;

/// Remote addresses remembered per connection: ICE tries a few (a candidate per interface and
/// family, reflexive and relayed ones); the map must not grow without bound.
const MAX_ADDRS_PER_PC: usize = 16;

/// Length of the ufrags we choose: 16 letters and digits, about 93 bits.
const UFRAG_LEN: usize = 16;

/// See the module docs.
#[derive(Default)]
pub(super) struct Demux {
    by_ufrag: HashMap<String, PcId>,
    by_addr: HashMap<SocketAddr, PcId>,
    /// Each connection's addresses, oldest first.
    addrs: HashMap<PcId, Vec<SocketAddr>>,
}

impl Demux {
    /// A ufrag no connection has.
    pub(super) fn new_ufrag(&self) -> String {
        loop {
            let candidate = crate::ids::random_id(UFRAG_LEN);
            if !self.by_ufrag.contains_key(&candidate) {
                return candidate;
            }
        }
    }

    /// A new connection, known by `ufrag`.
    pub(super) fn add(&mut self, ufrag: String, id: PcId) {
        self.by_ufrag.insert(ufrag, id);
    }

    /// Forget a connection.
    pub(super) fn remove(&mut self, id: PcId, ufrag: &str) {
        self.by_ufrag.remove(ufrag);
        for addr in self.addrs.remove(&id).unwrap_or_default() {
            if self.by_addr.get(&addr) == Some(&id) {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// The connection a datagram from `from` is for.
    pub(super) fn route(&mut self, from: SocketAddr, bytes: &[u8]) -> Option<PcId> {
        if rtc::stun::message::is_stun_message(bytes)
            && let Some(ufrag) = stun_local_ufrag(bytes)
        {
            let id = *self.by_ufrag.get(&ufrag)?;
            self.learn(id, from);
            return Some(id);
        }
        self.by_addr.get(&from).copied()
    }

    /// `id` talks with `addr`: route what comes from there to it.
    pub(super) fn learn(&mut self, id: PcId, addr: SocketAddr) {
        if self.by_addr.get(&addr) == Some(&id) {
            return;
        }
        let addrs = self.addrs.entry(id).or_default();
        if addrs.len() >= MAX_ADDRS_PER_PC {
            // The oldest goes: ICE tries candidates in turn, and the one that works is among
            // the last heard from.
            let oldest = addrs.remove(0);
            if self.by_addr.get(&oldest) == Some(&id) {
                self.by_addr.remove(&oldest);
            }
        }
        addrs.push(addr);
        if let Some(old) = self.by_addr.insert(addr, id)
            && let Some(old_addrs) = self.addrs.get_mut(&old)
        {
            old_addrs.retain(|a| *a != addr);
        }
    }
}

/// The local ufrag of a STUN message's `USERNAME` (`<ours>:<theirs>`), if it has one.
fn stun_local_ufrag(bytes: &[u8]) -> Option<String> {
    let mut msg = rtc::stun::message::Message::new();
    msg.unmarshal_binary(bytes).ok()?;
    let username = msg.get(rtc::stun::attributes::ATTR_USERNAME).ok()?;
    let username = std::str::from_utf8(&username).ok()?;
    Some(username.split(':').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn an_address_belongs_to_the_connection_last_heard_from_it() {
        let mut demux = Demux::default();
        demux.add("a".into(), 1);
        demux.add("b".into(), 2);
        demux.learn(1, addr(5000));
        assert_eq!(demux.route(addr(5000), &[0x80, 0]), Some(1));
        demux.learn(2, addr(5000));
        assert_eq!(demux.route(addr(5000), &[0x80, 0]), Some(2));
        assert!(demux.addrs[&1].is_empty());
        assert_eq!(demux.route(addr(5001), &[0x80, 0]), None);
    }

    #[test]
    fn a_connection_keeps_its_latest_addresses_and_forgets_them_when_removed() {
        let mut demux = Demux::default();
        demux.add("a".into(), 1);
        for port in 0..(MAX_ADDRS_PER_PC as u16 + 4) {
            demux.learn(1, addr(6000 + port));
        }
        assert_eq!(demux.addrs[&1].len(), MAX_ADDRS_PER_PC);
        assert_eq!(demux.route(addr(6000), &[0x80, 0]), None, "the oldest went");
        assert_eq!(demux.by_addr.len(), MAX_ADDRS_PER_PC);
        demux.remove(1, "a");
        assert!(demux.by_addr.is_empty() && demux.by_ufrag.is_empty());
    }
}
