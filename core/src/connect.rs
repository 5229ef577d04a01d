//! `ocinet network connect` and `disconnect`: one more attachment for a
//! running container, or one less, without restarting it. Each is
//! recorded before its first kernel change, marked with the hook that
//! makes it, so that a hook killed on the way leaves gc (or the next
//! connect or disconnect of the container) an attachment to undo.

use ocinet_common::ipam;
use ocinet_common::model::{
    AttachmentRequest, ChangeVerb, Changing, Endpoint, Mode, Origin, Phase, ProcessId,
};
use ocinet_common::netlink::Netlink;
use ocinet_common::{netns, validate, Error, Result};

use super::attach::{self, rollback_incomplete};
use super::drivers;
use super::naming::free_ifname;
use super::{attachments, release};
use crate::context::{Context, Locked, Subject};
use crate::killpoint;
use crate::networks;

/// What `connect` asks for besides the network and the container.
#[derive(Debug, Default, Clone)]
pub struct ConnectOptions {
    /// Static addresses on the network (`--ip`, `--ip6`), one per family.
    pub addresses: Vec<std::net::IpAddr>,
    /// Where the IPv4 and the IPv6 address came from, for errors (empty:
    /// `--ip`, `--ip6`).
    pub ip_field: String,
    pub ip6_field: String,
    pub aliases: Vec<String>,
    /// Where the aliases came from, for errors (empty: `--alias`).
    pub aliases_field: String,
    /// The inside name (a CNI runtime's CNI_IFNAME); the next free `ethN`
    /// when `None`.
    pub interface: Option<String>,
    /// Narrower ranges to lease from (CNI's `ipRanges`), and where they
    /// came from.
    pub ranges: Vec<ocinet_common::model::AddressRange>,
    pub ranges_field: String,
    /// The front end asking: a container is changed only through the one
    /// that made it (a CNI runtime's DEL knows nothing of an attachment
    /// `ocinet network connect` added, and the hook's poststop nothing of
    /// one a CNI ADD added).
    pub by: Origin,
}

/// The container `who` names: the one whose runtime id or ocinet name it
/// is. An argument that is one container's id and another's name (or the
/// name of several) is refused naming every match, as docs/networks.md says:
/// picking the id silently would act on a container the user may not have
/// meant. (Docker prefers an exact id; ocinet does not guess.)
pub fn find_container(ctx: &Context, who: &str) -> Result<Endpoint> {
    let (eps, bad) = ctx.state.list_endpoints();
    let mut named: Vec<Endpoint> = eps
        .into_iter()
        .filter(|e| e.id == who || e.name == who)
        .collect();
    // A record that could not be listed (being renamed between its setup
    // and final names) is still found by its id.
    if named.is_empty() && validate::container_id("container", who).is_ok() {
        if let Some(ep) = ctx.state.load_endpoint(who)? {
            named.push(ep);
        }
    }
    match named.len() {
        1 => Ok(named.remove(0)),
        0 => {
            let unreadable = if bad.is_empty() {
                String::new()
            } else {
                format!(" ({} record(s) could not be read)", bad.len())
            };
            Err(Error::NotFound(format!(
                "container {who:?}: no ocinet container has that id or name{unreadable}"
            )))
        }
        // Listed in the order of their ids.
        _ => Err(Error::Conflict(format!(
                "container {who:?} is ambiguous: it is the id or name of {} containers ({}); give an argument only one of them has",
                named.len(),
                named
                    .iter()
                    .map(|e| format!("id {} name {}", e.id, e.name))
                    .collect::<Vec<_>>()
                    .join("; ")
        ))),
    }
}

/// A container that can be connected or disconnected: made by the front
/// end `by`, set up, running, on networks of its own; what dead hooks
/// left unfinished is undone first (returned: the networks of disconnects
/// so finished).
fn changeable(ctx: &Locked, who: &str, by: Origin) -> Result<(Endpoint, Vec<String>)> {
    let mut ep = find_container(ctx, who)?;
    if ep.origin != by {
        return Err(Error::Conflict(match ep.origin {
            Origin::Cni => format!(
                "container {} ({}) is managed by its CNI runtime: its networks are the runtime's to change (another ADD or DEL), as its DEL would leave what ocinet network connect or disconnect changed",
                ep.id, ep.name
            ),
            Origin::Oci => format!(
                "container {} ({}) has networking set up by ocinet's OCI hook: it is not the CNI runtime's to change",
                ep.id, ep.name
            ),
        }));
    }
    if !matches!(ep.mode, Mode::Networks(_)) {
        return Err(Error::Conflict(format!(
            "container {} is in network mode {}: only a container on networks of its own can be connected or disconnected",
            ep.id,
            ep.mode.label()
        )));
    }
    if ep.phase != Phase::Ready {
        return Err(Error::Conflict(format!(
            "container {} is still being set up",
            ep.id
        )));
    }
    if ep.is_stale() {
        return Err(Error::Conflict(format!(
            "container {} is not running (ocinet gc removes what it left)",
            ep.id
        )));
    }
    let finished = release::finish_abandoned(ctx, &mut ep)?
        .into_iter()
        .filter(|(_, verb)| *verb == ChangeVerb::Disconnect)
        .map(|(net, _)| net)
        .collect();
    Ok((ep, finished))
}

/// Connect `who` to `network`, under the state lock (taken here).
pub fn connect(ctx: &Context, network: &str, who: &str, opts: &ConnectOptions) -> Result<String> {
    connect_locked(&ctx.lock()?, network, who, opts)
}

/// `connect` for a front end that holds the lock for more than it (a CNI
/// ADD).
pub fn connect_locked(
    ctx: &Locked,
    network: &str,
    who: &str,
    opts: &ConnectOptions,
) -> Result<String> {
    validate::name("network", network)?;
    // The container's own name is not checked against: a CNI runtime may
    // well pass it among its aliases, which is harmless.
    let aliases_field = match opts.aliases_field.as_str() {
        "" => "--alias",
        f => f,
    };
    validate::aliases(aliases_field, &opts.aliases, None)?;
    let mut host = Netlink::new()?;
    let (mut ep, _) = changeable(ctx, who, opts.by)?;
    if ep.is_on(network) {
        return Err(Error::Conflict(format!(
            "container {} ({}) is already connected to network {network}",
            ep.id, ep.name
        )));
    }
    let net = networks::get(ctx, network, &mut host)?;
    if let (false, Some(a)) = (net.dns, opts.aliases.first()) {
        return Err(Error::invalid(
            aliases_field,
            a,
            format!("network {network} has no name resolution (--disable-dns): the alias would never answer"),
        ));
    }
    let ns = netns::of_endpoint(&ep).ok_or_else(|| {
        Error::NotFound(format!(
            "container {}: its network namespace cannot be found (neither its pin nor its process holds it)",
            ep.id
        ))
    })?;
    let driver = drivers::for_network(net);
    driver.check(&[], "ports", &mut host)?;
    let interface = match &opts.interface {
        Some(name) => {
            validate::ifname("interface", name)?;
            if ep.attachments.iter().any(|a| &a.interface == name) {
                return Err(Error::Conflict(format!(
                    "container {} already has an interface {name}",
                    ep.id
                )));
            }
            name.clone()
        }
        None => free_ifname(ep.attachments.iter().map(|a| a.interface.as_str())),
    };
    let req = AttachmentRequest {
        addresses: opts.addresses.clone(),
        ip_field: if opts.ip_field.is_empty() {
            "--ip".into()
        } else {
            opts.ip_field.clone()
        },
        ip6_field: if opts.ip6_field.is_empty() {
            "--ip6".into()
        } else {
            opts.ip6_field.clone()
        },
        aliases: opts.aliases.clone(),
        ranges: opts.ranges.clone(),
        ranges_field: opts.ranges_field.clone(),
        ..AttachmentRequest::new(network)
    };
    let lease = attach::lease(ctx, driver.network(), &ep.id, &req, &mut host)?;
    // The default route stays where it is; a container that had none
    // (only internal networks) gets it here.
    let default_route = !ep.attachments.iter().any(|a| a.carries_default_route());
    let mut att = driver.describe(&ep.id, &interface, &lease, default_route, &[]);
    att.aliases = opts.aliases.clone();
    att.changing = ProcessId::of(std::process::id() as i32).map(|by| Changing {
        by,
        verb: ChangeVerb::Connect,
    });
    ep.attachments.push(att);
    let index = ep.attachments.len() - 1;
    if let Err(e) = ctx.state.save_endpoint(&ep) {
        if let Ok(pool) = ipam::open(&ctx.state, network) {
            for ip in lease.addresses() {
                let _ = pool.release(ip, &ep.id);
            }
        }
        return Err(e);
    }
    killpoint::reached("recorded");
    attach::remember_leases(ctx, &[(network.to_string(), &lease)]);
    let wired = attachments::wire(
        ctx,
        &mut host,
        &mut ep,
        &[(index, driver.as_ref())],
        &ns,
        Subject::Nobody,
        |e| ctx.state.save_endpoint(e),
    );
    if let Err(e) = wired {
        tracing::error!("connect failed, rolling back: {e}");
        return match release::release_attachment(ctx, &mut ep, index) {
            Ok(()) => Err(e),
            Err(undo) => Err(rollback_incomplete(e, undo)),
        };
    }
    ep.attachments[index].changing = None;
    ctx.state.save_endpoint(&ep)?;
    killpoint::reached("ready");
    crate::overlay::names::registered(ctx, &ep);
    if driver.network().dns {
        if let Err(e) = crate::resolv::refresh(ctx, &ep) {
            tracing::warn!(
                "the container's resolv.conf does not name the new network's resolver: {e}"
            );
        }
        crate::resolv::ensure_resolver(ctx, &[driver.network()]);
    }
    let att = &ep.attachments[index];
    tracing::info!(id = %ep.id, network, interface = %att.interface, ip = ?att.ipv4(), "connected");
    Ok(format!(
        "{} {} {}\n",
        att.interface,
        att.ipv4_net().map(|n| n.to_string()).unwrap_or_default(),
        att.mac.as_deref().unwrap_or("")
    ))
}

/// The CLI's disconnect (a CNI runtime's is its DEL): of hook-made
/// containers only.
pub fn disconnect(ctx: &Context, network: &str, who: &str) -> Result<String> {
    validate::name("network", network)?;
    let ctx = &ctx.lock()?;
    let (mut ep, finished) = changeable(ctx, who, Origin::Oci)?;
    let Some(index) = ep.attachments.iter().position(|a| a.network == network) else {
        if finished.iter().any(|n| n == network) {
            // A disconnect killed on the way, retried: done now.
            return Ok(format!("{network}\n"));
        }
        if ctx.config.load(network)?.is_none() {
            return Err(Error::NotFound(format!(
                "network {network:?} does not exist"
            )));
        }
        return Err(Error::Conflict(format!(
            "container {} ({}) is not connected to network {network}",
            ep.id, ep.name
        )));
    };
    let att = &ep.attachments[index];
    if !att.ports.is_empty() {
        return Err(Error::Conflict(format!(
            "network {network} carries the published ports of container {} ({}): {}; they would have nowhere to go (stop the container to change its ports)",
            ep.id,
            ep.name,
            att.ports
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let interface = att.interface.clone();
    let carried_route = att.carries_default_route();
    release::release_attachment(ctx, &mut ep, index)?;
    tracing::info!(id = %ep.id, network, %interface, "disconnected");
    if let Err(e) = crate::resolv::refresh(ctx, &ep) {
        tracing::warn!("the container's resolv.conf still names the network's resolver: {e}");
    }
    if carried_route {
        // Disconnected already: a failure here only leaves the container
        // without a default route, as it would be with no other network.
        match hand_over_default_route(ctx, &mut ep) {
            Ok(Some(to)) => tracing::info!(interface = %to, "the default route moved here"),
            Ok(None) => tracing::info!("no other network can carry the default route"),
            Err(e) => tracing::warn!("the default route was not moved: {e}"),
        }
    }
    Ok(format!("{interface}\n"))
}

/// The default route went with a disconnected attachment: as Docker
/// does, the first remaining attachment on a network that is not
/// internal carries it now. Returns its interface.
fn hand_over_default_route(ctx: &Context, ep: &mut Endpoint) -> Result<Option<String>> {
    let Some(ns) = netns::of_endpoint(ep) else {
        return Ok(None);
    };
    for i in 0..ep.attachments.len() {
        let Some(net) = ctx.config.load(&ep.attachments[i].network)? else {
            continue;
        };
        if net.internal {
            continue;
        }
        let interface = ep.attachments[i].interface.clone();
        let mut inner = Netlink::new_in(&ns)?;
        let Some(link) = inner.link_by_name(&interface)? else {
            continue;
        };
        let _span = tracing::debug_span!("default_route", %interface).entered();
        // Recorded first: a route the record does not name would be
        // added again by the next connect.
        let gateway = net
            .v4()
            .filter(|_| ep.attachments[i].ipv4().is_some())
            .map(|v4| v4.gateway);
        let gateway6 = net
            .gateway6()
            .filter(|_| ep.attachments[i].ipv6().is_some());
        ep.attachments[i].gateway = gateway.map(std::net::IpAddr::V4);
        ep.attachments[i].gateway6 = gateway6;
        ctx.state.save_endpoint(ep)?;
        if let Some(gw) = gateway {
            inner.add_default_route(gw, link.index)?;
        }
        if let Some(gw6) = gateway6 {
            match ep.attachments[i].ipv6_net() {
                Some(n) if !n.contains(&gw6) => inner.add_default_route6_onlink(gw6, link.index)?,
                _ => inner.add_default_route6(gw6, link.index)?,
            }
        }
        return Ok(Some(interface));
    }
    Ok(None)
}
