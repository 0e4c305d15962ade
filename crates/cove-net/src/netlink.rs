//! Plugging a sandbox in over rtnetlink, without `ip`.
//!
//! Two `ip -batch` processes cost ~4 ms of every create here (fork + exec
//! of a dynamically linked program, twice); the same work as a handful of
//! netlink requests costs well under a millisecond. Messages are built
//! with `netlink-packet-route` and sent on a `netlink-sys` socket, one
//! request at a time, each acknowledged (an error names the step). A socket
//! opened by a thread inside the sandbox's namespace stays in that
//! namespace, so the inside half runs on such a socket while the calling
//! thread never leaves the host's namespace.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::NetError;

/// Everything one sandbox's attachment sets up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plug {
    /// Name of the namespace (`/run/netns/<name>`).
    pub netns: String,
    /// A process in the sandbox's network namespace.
    pub pid: u32,
    pub host_veth: String,
    pub bridge: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

fn step(op: &str) -> impl FnOnce(io::Error) -> NetError + '_ {
    move |e| NetError::Command {
        command: format!("netlink {op}"),
        stderr: e.to_string(),
    }
}

/// Names the namespace of `pid` and wires it: what `ip netns attach`,
/// `ip link add … type veth peer name eth0 netns …`, `ip link set … master
/// … up` and, inside, `lo` up, the address, `eth0` up and the default
/// route did.
pub fn plug(p: &Plug) -> Result<(), NetError> {
    let path = Path::new(NETNS_DIR).join(&p.netns);
    name_netns(&path, p.pid).map_err(step("netns attach"))?;
    let ns = File::open(&path).map_err(step("open netns"))?;
    let mut host = Rtnl::open().map_err(step("socket"))?;
    let bridge = host.link_index(&p.bridge).map_err(step("bridge index"))?;
    host.add_veth(&p.host_veth, "eth0", &ns, bridge)
        .map_err(step("veth add"))?;
    let mut inside = Rtnl::open_in(&ns).map_err(step("socket in netns"))?;
    let lo = inside.link_index("lo").map_err(step("lo index"))?;
    inside.set_up(lo).map_err(step("lo up"))?;
    let eth0 = inside.link_index("eth0").map_err(step("eth0 index"))?;
    inside
        .add_addr_v4(eth0, p.ip, p.prefix)
        .map_err(step("addr add"))?;
    inside.set_up(eth0).map_err(step("eth0 up"))?;
    inside
        .add_default_route_v4(p.gateway)
        .map_err(step("route add default"))?;
    Ok(())
}

const NETNS_DIR: &str = "/run/netns";

/// `ip netns attach`: bind-mounts `/proc/<pid>/ns/net` on `path`, under a
/// `/run/netns` that is a shared mount (as iproute2 makes it, so a
/// namespace named here is seen from other mount namespaces).
fn name_netns(path: &Path, pid: u32) -> io::Result<()> {
    use rustix::mount::{mount_bind, mount_change, MountPropagationFlags};
    // Two threads making /run/netns a mount point at once would stack two
    // binds, the second hiding what was named under the first.
    static SETUP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _setup = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(NETNS_DIR)?;
    let shared = MountPropagationFlags::SHARED | MountPropagationFlags::REC;
    if mount_change(NETNS_DIR, shared).is_err() {
        // Not a mount point yet: make it one, then shared.
        rustix::mount::mount_bind_recursive(NETNS_DIR, NETNS_DIR)?;
        mount_change(NETNS_DIR, shared)?;
    }
    drop(_setup);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    if let Err(e) = mount_bind(format!("/proc/{pid}/ns/net").as_str(), path) {
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    Ok(())
}

/// A route netlink socket and its next sequence number.
struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    /// A socket in the calling thread's network namespace.
    fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { socket, seq: 0 })
    }

    /// A socket in the namespace `ns`, opened by a thread that joins it
    /// and ends, so no thread of the caller ever changes namespace.
    fn open_in(ns: &File) -> io::Result<Rtnl> {
        std::thread::scope(|s| {
            s.spawn(|| {
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                Rtnl::open()
            })
            .join()
            .map_err(|_| io::Error::other("netns thread panicked"))?
        })
    }

    /// Sends `msg` and waits for its acknowledgement, returning the
    /// messages that came before it (the answer of a get).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut answers = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut at = 0;
            while at < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[at..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "empty netlink message",
                    ));
                }
                at += len.next_multiple_of(4);
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    _ => {}
                }
            }
        }
    }

    fn link_index(&mut self, name: &str) -> io::Result<u32> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let answers = self.request(RouteNetlinkMessage::GetLink(msg), 0)?;
        answers
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no link {name}")))
    }

    /// A veth pair `name` (up, enslaved to `controller`) and `peer`, made
    /// directly inside the namespace `peer_ns`.
    fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_ns: &File,
        controller: u32,
    ) -> io::Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes = vec![
            LinkAttribute::IfName(peer.to_string()),
            LinkAttribute::NetNsFd(peer_ns.as_raw_fd()),
        ];
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes = vec![
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::Controller(controller),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
            ]),
        ];
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)?;
        Ok(())
    }

    fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0)?;
        Ok(())
    }

    fn add_addr_v4(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes = vec![
            AddressAttribute::Local(IpAddr::V4(ip)),
            AddressAttribute::Address(IpAddr::V4(ip)),
        ];
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    fn add_default_route_v4(&mut self, gateway: Ipv4Addr) -> io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet(gateway))];
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }
}
