//! A container's veth: the host end on the bridge, the inside end made
//! directly in the container's namespace with its address and route.

use std::fs::File;

use ocinet_common::model::{Attachment, Network};
use ocinet_common::netlink::{LinkRef, Netlink};
use ocinet_common::{Error, Result};

use crate::inside;

pub(crate) fn wire_container(
    host: &mut Netlink,
    net: &Network,
    att: &mut Attachment,
    ns: &File,
    bridge: u32,
) -> Result<()> {
    let veth = att.host_veth.clone().unwrap_or_default();
    let inside_name = att.interface.clone();
    let mac = att.mac_bytes()?.unwrap_or_default();
    host.create_veth(&veth, &inside_name, ns, &mac, net.mtu, bridge)
        .map_err(|e| match e {
            Error::Netlink { source, .. } if source.raw_os_error() == Some(nix::libc::EEXIST) => {
                // Someone else's interface: the rollback must not delete it.
                att.host_veth = None;
                Error::Conflict(format!(
                    "cannot create {veth} with {inside_name} in the container: an interface of that name already exists"
                ))
            }
            e => e,
        })?;

    // Before the inside end comes up: until then the host end has no
    // carrier and no link-local address yet.
    host.disable_ipv6_autoconf(LinkRef::Name(&veth))?;
    if !att.ports.is_empty() {
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

    let addr = att
        .ipv4_net()
        .ok_or_else(|| Error::Conflict(format!("attachment {inside_name} has no IPv4 address")))?;
    inside::configure(
        ns,
        &inside_name,
        addr.addr(),
        addr.prefix_len(),
        att.gateway_v4(),
    )?;
    Ok(())
}
