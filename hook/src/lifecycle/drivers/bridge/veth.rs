//! A container's veth: the host end on the bridge, `eth0` made directly in
//! the container's namespace with its address and route.

use std::fs::File;
use std::net::Ipv4Addr;

use ocinet_common::model::{Endpoint, Network};
use ocinet_common::netlink::{LinkRef, Netlink};
use ocinet_common::{Error, Result};

use crate::lifecycle::inside;
use crate::lifecycle::naming::CONTAINER_IFNAME;

pub(crate) fn wire_container(
    host: &mut Netlink,
    net: &Network,
    ep: &mut Endpoint,
    mac: &[u8; 6],
    ns: &File,
    bridge: u32,
) -> Result<()> {
    let veth = ep.host_veth.clone().unwrap_or_default();
    host.create_veth(&veth, CONTAINER_IFNAME, ns, mac, net.mtu, bridge).map_err(|e| match e {
        Error::Netlink { source, .. } if source.raw_os_error() == Some(nix::libc::EEXIST) => {
            // Someone else's interface: the rollback must not delete it.
            ep.host_veth = None;
            Error::Conflict(format!(
                "cannot create {veth} with {CONTAINER_IFNAME} in the container: an interface of that name already exists"
            ))
        }
        e => e,
    })?;

    // Before eth0 comes up: until then the host end has no carrier and no
    // link-local address yet.
    host.disable_ipv6_autoconf(LinkRef::Name(&veth))?;
    if !ep.ports.is_empty() {
        // Hairpin: the container reaching its own published port through a
        // host address gets its packets back out of the port they came in
        // by. Only for publishing containers: it also reflects their
        // broadcasts back to them.
        host.set_bridge_port(
            LinkRef::Name(&veth),
            true,
            &format!("set hairpin on {veth}"),
        )?;
    }

    let ip = ep.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let gateway = (!net.internal).then_some(net.gateway);
    inside::configure(ns, CONTAINER_IFNAME, ip, net.subnet.prefix_len(), gateway)?;
    Ok(())
}
