//! A container's veth: the host end on the bridge, the inside end made
//! directly in the container's namespace with its address and route; and
//! their removal at teardown.

use std::fs::File;

use ocinet_common::model::{Attachment, Endpoint, Network};
use ocinet_common::netlink::{LinkRef, Netlink};
use ocinet_common::{netns, Error, Result};

use crate::context::Context;
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
    let mut created = host.create_veth(&veth, &inside_name, ns, &mac, net.mtu, bridge);
    let exists = matches!(&created, Err(Error::Netlink { source, .. })
        if source.raw_os_error() == Some(nix::libc::EEXIST));
    let set_aside = exists
        && host
            .set_aside_retired(&veth, &crate::reaper::retired_name(&veth))
            .inspect_err(|_| {
                // Not known to be ours: the rollback must not delete it.
                att.host_veth = None;
            })?;
    if set_aside {
        // The pair of a container torn down a moment ago under the same
        // id, which the kernel or the reaper has not deleted yet.
        created = host.create_veth(&veth, &inside_name, ns, &mac, net.mtu, bridge);
    }
    created.map_err(|e| match e {
        Error::Netlink { source, .. } if source.raw_os_error() == Some(nix::libc::EEXIST) => {
            // Someone else's interface: the rollback must not delete it.
            att.host_veth = None;
            Error::Conflict(format!(
                "cannot create {veth} with {inside_name} in the container: an interface of that name already exists"
            ))
        }
        Error::Netlink { source, .. } if source.raw_os_error() == Some(nix::libc::EXFULL) => {
            Error::Conflict(format!(
                "network {}: its bridge {} has the most ports a Linux bridge can have (1023): \
                 spread the containers over more networks",
                net.name,
                net.bridge_name().unwrap_or_default()
            ))
        }
        e => e,
    })?;

    // A bridge port needs no IPv6 of its own; turned off before it comes
    // up, it never gets a link-local address or a route in the host's
    // IPv6 table (whose walks, at every carrier change, grew with the
    // number of containers).
    if let Err(e) = ocinet_common::sysctl::disable_ipv6_on_port(&veth) {
        // A hook or plugin in a container with NET_ADMIN but a read-only
        // /proc/sys (as Docker mounts it): no link-local address at least.
        let denied = matches!(&e, Error::Io { source, .. } if matches!(
            source.raw_os_error(),
            Some(nix::libc::EROFS | nix::libc::EACCES | nix::libc::EPERM)
        ));
        if !denied {
            return Err(e);
        }
        tracing::warn!(veth = %veth, "cannot turn IPv6 off on the bridge port ({e}): only its link-local address is left off");
        host.disable_ipv6_autoconf(LinkRef::Name(&veth))?;
    }
    // The container's end up first: the host end then comes up with its
    // carrier, in one step, instead of up without a carrier and then
    // carrier on (three more link notifications, and the kernel's link
    // watcher taking the RTNL lock while this setup still needs it).
    inside::configure_attachment(ns, &inside_name, att)?;
    if att.ports.is_empty() {
        host.set_up_by_name(&veth, &format!("set {veth} up"))?;
    } else {
        // Hairpin: the container reaching its own published port through a
        // host address gets its packets back out of the port they came in
        // by. Only for publishing containers: it also reflects their
        // broadcasts back to them.
        host.set_bridge_port(
            LinkRef::Name(&veth),
            true,
            true,
            &format!("set hairpin on {veth} and set it up"),
        )?;
    }
    Ok(())
}

/// How a teardown removes host veths.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Veths {
    /// Deleted before it returns.
    Delete,
    /// Retired at once (down, out of the bridge, marked: see
    /// `Netlink::retire_link`) and deleted by a detached reaper
    /// (`reaper.rs`): for a front end whose caller waits on it (a CNI
    /// DEL, the hook's poststop of a container that joined a namespace).
    Retire,
    /// Retired at once and left to the kernel, which deletes the pair with
    /// the container's namespace once the pin goes (the hook's poststop of
    /// a container whose namespace was its own: no process is left behind
    /// for a foreground `crun run`, a child subreaper, to wait on). Where
    /// something else still holds that namespace, the retired pair lives
    /// as long as it does, down and out of the bridge, or until `ocinet
    /// gc`.
    WithNamespace,
}

// Teardown: driven by what the record says was made (`release.rs`), so
// it works whatever became of the network definition.

/// The container's ends of its veths retired too, while its namespace is
/// still there: an ADD into the same namespace before the reaper ran finds
/// its interface name free. Best effort: the reaper takes them either way.
pub(crate) fn retire_inside(ep: &Endpoint, atts: &[&Attachment]) {
    let Some(ns) = netns::of_endpoint(ep) else {
        return;
    };
    let inside = Netlink::new_in(&ns).and_then(|mut nl| {
        for a in atts.iter().filter(|a| a.host_veth.is_some()) {
            if nl
                .link_by_name(&a.interface)?
                .is_some_and(|l| l.kind.as_deref() == Some("veth"))
            {
                let aside = crate::reaper::retired_name(&a.interface);
                nl.retire_link(&a.interface, Some(&aside))?;
            }
        }
        Ok(())
    });
    if let Err(e) = inside {
        tracing::warn!("the container's end of its veth keeps its name until the reaper runs: {e}");
    }
}

/// Delete (or retire, for a reaper) the host ends of `atts`' veths.
/// Deleting one end removes both; gone already (the namespace died with
/// the container) is fine.
pub(crate) fn remove_host_ends(
    ctx: &Context,
    atts: &[&Attachment],
    how: Veths,
    errors: &mut Vec<Error>,
) {
    let mut retired = false;
    for veth in atts.iter().filter_map(|a| a.host_veth.as_deref()) {
        let _span = tracing::debug_span!("delete_veth", veth).entered();
        let outcome = Netlink::new().and_then(|mut nl| match how {
            Veths::Delete => nl.delete_link(veth),
            Veths::Retire | Veths::WithNamespace => {
                let found = nl.retire_link(veth, None)?;
                retired |= found;
                Ok(found)
            }
        });
        match outcome {
            Ok(existed) => tracing::debug!(veth, existed, ?how, "host veth removed"),
            Err(e) => errors.push(e),
        }
    }
    if retired {
        crate::killpoint::reached("teardown-retired");
    }
    if how == Veths::Retire {
        crate::reaper::reap_later(ctx, retired);
    }
}

/// The bridges' neighbour entries of `atts`' IPv6 addresses, after their
/// veths went (see `Netlink::delete_neighbour6`). IPv4 needs none: the
/// MAC is derived from the IPv4 address, so an entry is right for the
/// next holder too.
pub(crate) fn forget_neighbours6(atts: &[&Attachment], errors: &mut Vec<Error>) {
    let mut on_bridge = atts
        .iter()
        .filter_map(|a| Some((a.bridge.as_deref()?, a.ipv6()?)))
        .peekable();
    if on_bridge.peek().is_none() {
        return;
    }
    let outcome = Netlink::new().and_then(|mut nl| {
        for (bridge, ip) in on_bridge {
            if let Some(link) = nl.link_by_name(bridge)? {
                nl.delete_neighbour6(link.index, ip)?;
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        errors.push(e);
    }
}
