use dhcproto::{v4, Decodable, Decoder, Encodable};
fn main() {
    let data = std::fs::read(std::env::args().nth(1).unwrap_or_default()).unwrap_or_default();
    let mut msg = v4::Message::default();
    msg.set_flags(v4::Flags::default().set_broadcast())
        .set_chaddr(&[1, 2, 3, 4, 5, 6]);
    msg.opts_mut().insert(v4::DhcpOption::MessageType(v4::MessageType::Discover));
    msg.opts_mut().insert(v4::DhcpOption::ParameterRequestList(vec![v4::OptionCode::SubnetMask, v4::OptionCode::Router, v4::OptionCode::DomainNameServer, v4::OptionCode::ClasslessStaticRoute]));
    let out = msg.to_vec().unwrap();
    println!("{}", out.len());
    if let Ok(m) = v4::Message::decode(&mut Decoder::new(&data)) {
        for (_, o) in m.opts().iter() {
            match o {
                v4::DhcpOption::Router(r) => println!("{r:?}"),
                v4::DhcpOption::DomainNameServer(r) => println!("{r:?}"),
                v4::DhcpOption::ClasslessStaticRoute(r) => println!("{r:?}"),
                v4::DhcpOption::SubnetMask(r) => println!("{r:?}"),
                v4::DhcpOption::AddressLeaseTime(r) => println!("{r:?}"),
                v4::DhcpOption::Hostname(r) => println!("{r:?}"),
                v4::DhcpOption::DomainName(r) => println!("{r:?}"),
                v4::DhcpOption::InterfaceMtu(r) => println!("{r:?}"),
                _ => {}
            }
        }
    }
}
