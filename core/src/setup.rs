//! Setting a container up from a typed `Request`: the mode's dispatch, and
//! for networks the order of the steps over all its attachments (ports
//! claimed, addresses leased, intent recorded, then the kernel work, the
//! pin, and the record made final; any failure rolls back everything).

use std::fs::File;
use std::path::Path;

use ocinet_common::model::{
    DnsRequest, Endpoint, Mode, Phase, PortSpec, ProcessId, Request, Settings,
};
use ocinet_common::netlink::Netlink;
use ocinet_common::{netns, Error, Result};

use super::attach;
use super::drivers::{self, NetworkDriver};
use super::naming::{container_ifname, free_ifname};
use super::pin::{netns_link_for, pin};
use super::ports::{claim_ports, with_host_ip};
use super::{attachments, release, resolv};
use crate::context::{Context, Locked, Subject};
use crate::ipam::Lease;
use crate::killpoint;
use crate::networks;

/// The container's network namespace, opened and checked before the
/// state lock is taken: its path is the caller's (config.json,
/// `CNI_NETNS`) and may name something whose open blocks (a FIFO), which
/// must hold up that one call, not every hook of the host behind the lock.
pub struct Target {
    ns: Option<File>,
    id: Option<(u64, u64)>,
}

impl Target {
    /// `req`'s namespace, opened now.
    pub fn open(req: &Request) -> Result<Target> {
        let ns = req.netns.as_deref().map(netns::open_netns).transpose()?;
        Target::of(req, ns)
    }

    /// `req`'s namespace as the caller opened it (`ns`), checked: never
    /// the namespace ocinet runs in, for a container that needs its own.
    pub fn of(req: &Request, ns: Option<File>) -> Result<Target> {
        let id = ns.as_ref().map(netns::id_of_fd).transpose()?;
        if matches!(req.settings.mode, Mode::Networks(_) | Mode::None) {
            if let (Some(path), Some(id)) = (&req.netns, id) {
                refuse_own_netns(&req.netns_field, path, id)?;
            }
        }
        Ok(Target { ns, id })
    }
}

/// Set the container up, under the state lock (taken here, once its
/// namespace is open).
pub fn setup(ctx: &Context, req: &Request) -> Result<()> {
    let target = Target::open(req)?;
    setup_locked(&ctx.lock()?, req, target)
}

/// `setup` for a front end that holds the lock for more than it (a CNI
/// ADD: the network made, a record of another namespace released first),
/// with the namespace it opened before taking the lock.
pub fn setup_locked(ctx: &Locked, req: &Request, target: Target) -> Result<()> {
    let settings = &req.settings;
    let Target { ns, id: netns_id } = target;
    // Every front end's ports (the hook's annotation, a CNI runtime's
    // portMappings) pass the one check: a host port published twice by one
    // request would otherwise reach nftables as a duplicate map element.
    ocinet_common::model::ports::check_unique(&settings.ports_field, &settings.ports)?;

    if let Some(existing) = ctx.state.load_endpoint(&req.id)? {
        if existing.phase == Phase::Ready && existing.netns_id == netns_id {
            // Both createRuntime and prestart configured, or a retried hook.
            tracing::info!("already set up");
            return Ok(());
        }
        if !existing.is_stale() {
            return Err(Error::Conflict(format!(
                "container {} already has an ocinet endpoint in another network namespace",
                req.id
            )));
        }
        tracing::warn!("removing a stale endpoint left by an earlier container with this id");
        release::release(ctx, &existing)?;
    }

    let ep = Endpoint {
        container: req.pid.and_then(ProcessId::of),
        netns_id,
        netns_fresh: req.netns_fresh && req.netns.is_some(),
        hook: ProcessId::of(std::process::id() as i32),
        origin: req.origin,
        ..Endpoint::new(&req.id, &settings.name, settings.mode.clone())
    };

    match &settings.mode {
        Mode::Host => {
            if ns.is_some() {
                tracing::warn!("io.ocinet.network=host, but the container has a network namespace of its own; leaving it alone");
            }
            save_ready(ctx, ep)
        }
        Mode::None => {
            let ns = require_netns(ns.as_ref(), settings)?;
            super::inside::enter(ns)?;
            save_ready(ctx, ep)
        }
        Mode::Container(target) => {
            check_shared(ctx, &ep, target)?;
            save_ready(ctx, ep)
        }
        Mode::Networks(_) => {
            let ns = require_netns(ns.as_ref(), settings)?;
            let ns_path = req.netns.as_deref().unwrap_or(Path::new(""));
            join_networks(ctx, ep, req, ns, ns_path)
        }
    }
}

/// A container's namespace that is the one ocinet runs in (the host's:
/// `/proc/self/ns/net`, a `/run/netns` entry of it) would have the
/// container's interface, address and routes put into the host itself.
/// Compared by nsfs device and inode, so any path to it is caught. The
/// init process's namespace is refused too: where ocinet itself runs in
/// another (nested, or a test's host), that one is still the machine's.
pub fn refuse_own_netns(field: &str, path: &Path, id: (u64, u64)) -> Result<()> {
    if netns::own_id()? == id {
        return Err(Error::invalid(
            field,
            path.display(),
            "is the network namespace ocinet runs in (the host's), not one of the container's own",
        ));
    }
    if netns::id_of(Path::new("/proc/1/ns/net")).is_ok_and(|init| init == id) {
        return Err(Error::invalid(
            field,
            path.display(),
            "is the network namespace of the machine's init process, not one of the container's own",
        ));
    }
    Ok(())
}

fn require_netns<'a>(ns: Option<&'a File>, settings: &Settings) -> Result<&'a File> {
    ns.ok_or_else(|| {
        Error::invalid(
            "config.json linux.namespaces",
            "no network namespace",
            format!(
                "network {} needs a network namespace of the container's own",
                settings.mode.label()
            ),
        )
    })
}

fn save_ready(ctx: &Locked, mut ep: Endpoint) -> Result<()> {
    ep.phase = Phase::Ready;
    ctx.state.save_endpoint(&ep)?;
    tracing::info!(mode = %ep.mode.label(), "set up");
    Ok(())
}

/// `container:<id>`: the runtime already put this container into the
/// target's namespace (linux.namespaces path); check that. The record
/// keeps the link so that ps and the exporter can show the target's
/// interfaces as the sharer's.
fn check_shared(ctx: &Context, ep: &Endpoint, target: &str) -> Result<()> {
    let t = ctx.state.load_endpoint(target)?.ok_or_else(|| {
        Error::NotFound(format!(
            "io.ocinet.network=container:{target}: container {target} has no ocinet endpoint"
        ))
    })?;
    if ep.netns_id.is_none() || t.netns_id != ep.netns_id {
        let hint = t
            .netns_link
            .as_ref()
            .map(|p| {
                format!(
                    " (set the network namespace path in config.json to {})",
                    p.display()
                )
            })
            .unwrap_or_default();
        return Err(Error::Conflict(format!(
            "io.ocinet.network=container:{target}: this container does not share container {target}'s network namespace{hint}"
        )));
    }
    Ok(())
}

/// Every attachment of `settings`: eth0 on the first network, eth1 on the
/// second, ... The default route goes through the first network that is
/// not internal, and the published ports are DNATed to that attachment
/// (to the first one if every network is internal, which refuses them).
fn join_networks(
    ctx: &Locked,
    mut ep: Endpoint,
    req: &Request,
    ns: &File,
    ns_path: &Path,
) -> Result<()> {
    let settings = &req.settings;
    let mut host = Netlink::new()?;
    let mut drivers: Vec<Box<dyn NetworkDriver>> = Vec::new();
    for a in &settings.attachments {
        drivers.push(drivers::for_network(networks::get(
            ctx, &a.network, &mut host,
        )?));
    }
    aliases_answer(settings, &drivers)?;
    let nets: Vec<&ocinet_common::model::Network> = drivers.iter().map(|d| d.network()).collect();
    // The generated resolv.conf goes over the container's own when it is on
    // a DNS-enabled network, has a process to find the mount namespace by
    // and a root file system, and did not say `io.ocinet.dns=off`.
    let resolv = match (&settings.dns, req.pid, &req.rootfs) {
        (DnsRequest::Off, _, _) => None,
        (_, Some(pid), Some(rootfs)) if resolv::any(&nets) => Some((pid, rootfs.clone())),
        _ => None,
    };
    if let Some((_, rootfs)) = &resolv {
        // Before anything is claimed: nothing to undo.
        resolv::check_mount_point(rootfs)?;
    }
    let route = drivers.iter().position(|d| !d.network().internal);
    let publisher = route.unwrap_or(0);
    let ports = match drivers.get(publisher) {
        Some(d) => with_host_ip(
            &settings.ports,
            d.network().bridge().and_then(|b| b.host_binding_ip),
        ),
        None => Vec::new(),
    };
    let ports_of = |i: usize| -> &[PortSpec] {
        if i == publisher {
            &ports
        } else {
            &[]
        }
    };
    let names = interface_names(settings)?;
    for (i, d) in drivers.iter().enumerate() {
        d.check(ports_of(i), &settings.ports_field, &mut host)?;
    }

    if let DnsRequest::Servers(s) = &settings.dns {
        // The resolver forwards from the host's namespace, past the
        // isolation between networks: not to an address of one of them.
        let (all, _) = ctx.config.list();
        let holds = |n: &&ocinet_common::model::Network, ip: &std::net::IpAddr| match ip {
            std::net::IpAddr::V4(ip) => n.v4().is_some_and(|v4| v4.subnet.contains(ip)),
            std::net::IpAddr::V6(ip) => n.v6().is_some_and(|v6| v6.subnet.contains(ip)),
        };
        if let Some((ip, n)) = s
            .iter()
            .find_map(|ip| all.iter().find(|n| holds(n, ip)).map(|n| (ip, n)))
        {
            return Err(Error::invalid(
                "io.ocinet.dns",
                ip,
                format!(
                    "is in network {}: the resolver would reach it for the container",
                    n.name
                ),
            ));
        }
        ep.dns_servers = ocinet_common::model::endpoint::DnsServers(s.clone());
    }

    if let Some(d) = drivers.get(publisher) {
        claim_ports(ctx, &ep.id, &d.network().name, &ports)?;
    }
    let mut leases: Vec<(String, Lease)> = Vec::new();
    for (i, (d, a)) in drivers.iter().zip(&settings.attachments).enumerate() {
        match attach::lease(ctx, d.network(), &ep.id, a, &mut host) {
            Ok(lease) => {
                let mut att = d.describe(&ep.id, &names[i], &lease, Some(i) == route, ports_of(i));
                if d.network().dns {
                    att.aliases = a.aliases.clone();
                }
                ep.attachments.push(att);
                leases.push((a.network.clone(), lease));
            }
            Err(e) => {
                attach::give_back(ctx, &ep, &ports);
                return Err(e);
            }
        }
    }
    // The pin is named after the container id, so it goes into the intent
    // too (one record write fewer; unpinning a pin never made is a no-op).
    ep.netns_link = Some(netns_link_for(&ep.id));
    if resolv.is_some() {
        ep.resolv_conf = Some(ctx.state.resolv_conf_path(&ep.id)?);
    }
    attach::record_intent(ctx, &ep)?;
    let remembered: Vec<(String, &Lease)> = leases.iter().map(|(n, l)| (n.clone(), l)).collect();
    attach::remember_leases(ctx, &remembered);

    let made: Vec<(usize, &dyn NetworkDriver)> = drivers
        .iter()
        .enumerate()
        .map(|(i, d)| (i, d.as_ref()))
        .collect();
    let id = ep.id.clone();
    let wired = attachments::wire(
        ctx,
        &mut host,
        &mut ep,
        &made,
        ns,
        Subject::Arriving(&id),
        |e| ctx.state.save_setup(e),
    )
    .and_then(|()| {
        pin(&mut ep, ns_path)?;
        killpoint::reached("pinned");
        Ok(())
    })
    .and_then(|()| {
        // Its `[::1]` ports accepting before the hook returns (the record
        // as saved names them), or the setup fails and is rolled back.
        crate::proxy::ensure(ctx, &ep)?;
        killpoint::reached("proxied");
        Ok(())
    });
    if let (Ok(()), Some((pid, rootfs))) = (&wired, &resolv) {
        // Without it the container still has its network; its names
        // resolve for others either way.
        if let Err(e) = resolv::install(ctx, &ep, &nets, *pid, rootfs) {
            tracing::warn!("the container keeps its own resolv.conf: {e}");
        }
    }
    attach::conclude(ctx, &ep, wired)?;
    crate::overlay::names::registered(ctx, &ep);
    if resolv::any(&nets) {
        resolv::ensure_resolver(ctx, &nets);
    }
    for a in &ep.attachments {
        tracing::info!(network = %a.network, interface = %a.interface, ip = ?a.ipv4(), "set up");
    }
    Ok(())
}

/// Aliases answer only on a network with name resolution: every front
/// end's are checked here once more (`validate::aliases`, the rule the
/// front ends apply naming their own field), refused when no network they
/// are given for has name resolution (they would never answer: `network
/// connect --alias` and a CNI runtime name one network), and not recorded,
/// with a warning, on those of a container's several networks that have
/// none (`io.ocinet.aliases` names the container's every network).
fn aliases_answer(settings: &Settings, drivers: &[Box<dyn NetworkDriver>]) -> Result<()> {
    let mut quiet: Vec<&str> = Vec::new();
    let mut answered = false;
    let mut first: Option<(&str, &str)> = None;
    for (a, d) in settings.attachments.iter().zip(drivers) {
        ocinet_common::validate::aliases(&a.aliases_field, &a.aliases, None)?;
        let Some(alias) = a.aliases.first() else {
            continue;
        };
        first.get_or_insert((&a.aliases_field, alias));
        if d.network().dns {
            answered = true;
        } else {
            quiet.push(&a.network);
        }
    }
    match first {
        Some((field, alias)) if !answered => Err(Error::invalid(
            field,
            alias,
            format!(
                "network {} has no name resolution (--disable-dns): the alias would never answer",
                quiet.join(", ")
            ),
        )),
        _ => {
            for n in quiet {
                tracing::warn!(
                    network = n,
                    "the container's aliases are not recorded on network {n}: it has no name resolution (--disable-dns)"
                );
            }
            Ok(())
        }
    }
}

/// The inside names: as asked, else `ethN` by position; each once.
fn interface_names(settings: &Settings) -> Result<Vec<String>> {
    let given: Vec<&str> = settings
        .attachments
        .iter()
        .filter_map(|a| a.interface.as_deref())
        .collect();
    let mut names: Vec<String> = Vec::new();
    for (i, a) in settings.attachments.iter().enumerate() {
        let name = match &a.interface {
            Some(n) => {
                ocinet_common::validate::ifname(&a.interface_field, n)?;
                if names.contains(n) {
                    return Err(Error::invalid(
                        &a.interface_field,
                        n,
                        format!("given to two networks of {}", settings.mode.label()),
                    ));
                }
                n.clone()
            }
            // Its position's ethN, unless another attachment was given
            // that name: then the first free one.
            None => {
                let own = container_ifname(i);
                if given.contains(&own.as_str()) || names.contains(&own) {
                    free_ifname(
                        given
                            .iter()
                            .copied()
                            .chain(names.iter().map(String::as_str)),
                    )
                } else {
                    own
                }
            }
        };
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocinet_common::model::request::{AttachmentRequest, DnsRequest};
    use ocinet_common::model::Mode;

    fn settings(given: &[Option<&str>]) -> Settings {
        let attachments: Vec<AttachmentRequest> = given
            .iter()
            .enumerate()
            .map(|(i, g)| AttachmentRequest {
                interface: g.map(str::to_string),
                interface_field: format!("io.ocinet.interface.n{i}"),
                ..AttachmentRequest::new(&format!("n{i}"))
            })
            .collect();
        Settings {
            mode: Mode::Networks(attachments.iter().map(|a| a.network.clone()).collect()),
            name: "c".into(),
            attachments,
            ports: Vec::new(),
            ports_field: "ports".into(),
            dns: DnsRequest::Networks,
        }
    }

    #[test]
    fn positions_name_interfaces_unless_a_given_name_took_one() {
        let names = |g: &[Option<&str>]| interface_names(&settings(g)).unwrap();
        assert_eq!(names(&[None, None]), ["eth0", "eth1"]);
        assert_eq!(names(&[None, Some("backnet")]), ["eth0", "backnet"]);
        assert_eq!(names(&[None, Some("eth0")]), ["eth1", "eth0"]);
        assert_eq!(names(&[Some("eth1"), None, None]), ["eth1", "eth0", "eth2"]);
        let e = interface_names(&settings(&[Some("a1"), Some("a1")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("io.ocinet.interface.n1") && e.contains("a1"),
            "{e}"
        );
    }

    /// The machine's namespace (init's) is refused even where ocinet runs
    /// in another; looked at without any container (no interface is ever
    /// made in the machine's namespace by a test).
    #[test]
    fn the_init_namespace_is_refused() {
        let init = std::path::Path::new("/proc/1/ns/net");
        let Ok(id) = netns::id_of(init) else {
            return; // not root: nothing to look at
        };
        let e = refuse_own_netns("CNI_NETNS", init, id)
            .expect_err("init's namespace accepted")
            .to_string();
        assert!(
            e.contains("CNI_NETNS") && e.contains("/proc/1/ns/net"),
            "{e}"
        );
    }
}
