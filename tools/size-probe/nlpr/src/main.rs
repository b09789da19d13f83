use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST, NLM_F_CREATE};
use netlink_packet_route::{link::{LinkMessage, LinkFlag, LinkAttribute}, address::{AddressMessage, AddressAttribute}, route::{RouteMessage, RouteAttribute, RouteAddress}, RouteNetlinkMessage, AddressFamily};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
fn send(sock: &Socket, m: RouteNetlinkMessage) {
    let mut hdr = NetlinkHeader::default();
    hdr.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    let mut msg = NetlinkMessage::new(hdr, NetlinkPayload::from(m));
    msg.finalize();
    let mut buf = vec![0; msg.header.length as usize];
    msg.serialize(&mut buf[..]);
    let _ = sock.send(&buf, 0);
    let mut rx = vec![0u8; 8192];
    if let Ok(n) = sock.recv(&mut &mut rx[..], 0) {
        if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[..n]) {
            if let NetlinkPayload::Error(e) = m.payload { println!("{:?}", e.code); }
        }
    }
}
fn main() {
    let idx: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut sock = Socket::new(NETLINK_ROUTE).unwrap();
    sock.bind(&SocketAddr::new(0, 0)).unwrap();
    let mut l = LinkMessage::default();
    l.header.index = idx; l.header.flags = vec![LinkFlag::Up]; l.header.change_mask = vec![LinkFlag::Up];
    l.attributes.push(LinkAttribute::Mtu(1500));
    send(&sock, RouteNetlinkMessage::SetLink(l));
    let mut a = AddressMessage::default();
    a.header.family = AddressFamily::Inet; a.header.prefix_len = 24; a.header.index = idx;
    a.attributes.push(AddressAttribute::Local("10.0.0.5".parse().unwrap()));
    send(&sock, RouteNetlinkMessage::NewAddress(a));
    let mut r = RouteMessage::default();
    r.header.address_family = AddressFamily::Inet;
    r.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet("10.0.0.1".parse().unwrap())));
    r.attributes.push(RouteAttribute::Oif(idx));
    send(&sock, RouteNetlinkMessage::NewRoute(r));
}
