//! The steps every attachment's setup shares, in this order: lease an
//! address (and vet the MAC), record the intent before the first kernel
//! change, then conclude by renaming the record, or roll back everything
//! recorded. Each gives back what it took when it fails.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ocinet_common::ipam;
use ocinet_common::model::{AddressRange, AttachmentRequest, Endpoint, Network, PortSpec};
use ocinet_common::netlink::Netlink;
use ocinet_common::{Error, Result};

use super::mac::check_mac;
use super::naming::{mac_for, mac_for6};
use super::release;
use crate::context::Locked;
use crate::ipam::Lease;
use crate::killpoint;

/// Lease an address on `net` for container `id` (the requested one, or
/// the next free) and check the MAC; on failure the lease is given back.
pub(crate) fn lease(
    ctx: &Locked,
    net: &Network,
    id: &str,
    req: &AttachmentRequest,
    host: &mut Netlink,
) -> Result<Lease> {
    let (wanted, wanted6) = requested_addresses(net, req)?;
    let pool = ipam::open(&ctx.state, &net.name)?;
    let ranges = ranges_of(net, req)?;
    let from_ranges = |v4: bool| -> Result<Option<IpAddr>> {
        let mine: Vec<&AddressRange> = ranges.iter().filter(|r| r.first.is_ipv4() == v4).collect();
        if mine.is_empty() {
            return Ok(None);
        }
        for r in &mine {
            if let Some(ip) = pool.allocate_between(net, id, r.first, r.last)? {
                return Ok(Some(ip));
            }
        }
        Err(Error::PoolExhausted {
            network: net.name.clone(),
            range: mine
                .iter()
                .map(|r| format!("{}-{}", r.first, r.last))
                .collect::<Vec<_>>()
                .join(","),
        })
    };
    let ip4 = match net.v4() {
        // From this host's blocks of the cluster's subnet.
        Some(_) if net.overlay().is_some() => Some(IpAddr::V4(crate::overlay::lease::allocate(
            ctx,
            net,
            id,
            wanted,
            &req.ip_field,
            pool.as_ref(),
        )?)),
        Some(_) if wanted.is_none() => match from_ranges(true)? {
            Some(ip) => Some(ip),
            None => Some(pool.allocate(net, id, None, &req.ip_field)?),
        },
        Some(_) => Some(pool.allocate(net, id, wanted.map(IpAddr::V4), &req.ip_field)?),
        None => None,
    };
    let release_leased = |ip6: Option<Ipv6Addr>| {
        for ip in ip4.into_iter().chain(ip6.map(IpAddr::V6)) {
            let _ = pool.release(ip, id);
        }
    };
    let ip6 = match net.v6() {
        None => None,
        Some(_) => {
            killpoint::reached("leased-ipv4");
            let ranged = match wanted6 {
                Some(_) => Ok(None),
                None => from_ranges(false),
            };
            let overlay4 = ip4
                .filter(|_| net.overlay().is_some())
                .and_then(|ip| match ip {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                });
            let got = match (ranged, overlay4) {
                // From the IPv6 block that goes with the IPv4 one.
                (_, Some(v4)) => crate::overlay::lease::allocate6(
                    net,
                    id,
                    v4,
                    wanted6,
                    &req.ip6_field,
                    pool.as_ref(),
                ),
                (Ok(Some(IpAddr::V6(ip6))), None) => Ok(ip6),
                (Ok(_), None) => pool.allocate6(net, id, wanted6, &req.ip6_field),
                (Err(e), None) => Err(e),
            };
            match got {
                Ok(ip6) => Some(ip6),
                Err(e) => {
                    release_leased(None);
                    return Err(e);
                }
            }
        }
    };
    killpoint::reached("leased");
    let first = ip4.or(ip6.map(IpAddr::V6));
    let mac = match first {
        Some(ip) => check_mac(ctx, net, id, req, ip, host).map(|()| match (req.mac, ip) {
            (Some(mac), _) => mac,
            (None, IpAddr::V4(v4)) => mac_for(v4),
            (None, IpAddr::V6(v6)) => mac_for6(v6),
        }),
        None => Err(Error::invalid(
            "subnet",
            "none",
            format!("network {} has no subnet", net.name),
        )),
    };
    match mac {
        Ok(mac) => Ok(Lease {
            ip4: ip4.and_then(|ip| match ip {
                IpAddr::V4(v4) => Some((v4, wanted.is_some())),
                IpAddr::V6(_) => None,
            }),
            ip6: ip6.map(|ip| (ip, wanted6.is_some())),
            mac,
        }),
        Err(e) => {
            release_leased(ip6);
            Err(e)
        }
    }
}

/// The addresses asked for, one per family at most, an IPv6 one only on
/// a network with an IPv6 subnet.
/// The request's ranges, checked against `net`: each inside the
/// network's subnet of its family, its gateway (if named) the network's.
/// A runtime's range the network cannot honour is refused, not ignored.
fn ranges_of(net: &Network, req: &AttachmentRequest) -> Result<Vec<AddressRange>> {
    for r in &req.ranges {
        let (subnet, gateway) = match r.subnet {
            ipnet::IpNet::V4(_) => match net.v4() {
                Some(v4) => (ipnet::IpNet::V4(v4.subnet), IpAddr::V4(v4.gateway)),
                None => {
                    return Err(Error::invalid(
                        &req.ranges_field,
                        r.subnet,
                        format!("network {} has no IPv4 subnet", net.name),
                    ))
                }
            },
            ipnet::IpNet::V6(_) => match net.v6() {
                Some(v6) => (ipnet::IpNet::V6(v6.subnet), IpAddr::V6(v6.gateway)),
                None => {
                    return Err(Error::invalid(
                        &req.ranges_field,
                        r.subnet,
                        format!("network {} has no IPv6 subnet", net.name),
                    ))
                }
            },
        };
        if !subnet.contains(&r.subnet) {
            return Err(Error::invalid(
                &req.ranges_field,
                r.subnet,
                format!("is not inside network {}'s subnet {subnet}", net.name),
            ));
        }
        if let Some(g) = r.gateway.filter(|g| *g != gateway) {
            return Err(Error::invalid(
                &req.ranges_field,
                g,
                format!("is not network {}'s gateway {gateway}", net.name),
            ));
        }
    }
    Ok(req.ranges.clone())
}

fn requested_addresses(
    net: &Network,
    req: &AttachmentRequest,
) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
    let (mut v4, mut v6) = (None, None);
    for a in &req.addresses {
        match a {
            IpAddr::V4(_) if !net.has_ipv4() => {
                return Err(Error::invalid(
                    &req.ip_field,
                    a,
                    format!("network {} is IPv6-only", net.name),
                ))
            }
            IpAddr::V4(ip) if v4.is_none() => v4 = Some(*ip),
            IpAddr::V4(_) => {
                return Err(Error::invalid(
                    &req.ip_field,
                    a,
                    "one IPv4 address per attachment",
                ))
            }
            IpAddr::V6(_) if net.v6().is_none() => {
                return Err(Error::invalid(
                    &req.ip6_field,
                    a,
                    format!("network {} has no IPv6 subnet", net.name),
                ))
            }
            IpAddr::V6(ip) if v6.is_none() => v6 = Some(*ip),
            IpAddr::V6(_) => {
                return Err(Error::invalid(
                    &req.ip6_field,
                    a,
                    "one IPv6 address per attachment",
                ))
            }
        }
    }
    Ok((v4, v6))
}

/// Give back the leases of `ep`'s attachments and the port claims the
/// setup took (`ports`: taken before an attachment carries them): a setup
/// that failed before its intent record was written.
pub(crate) fn give_back(ctx: &Locked, ep: &Endpoint, ports: &[PortSpec]) {
    for a in &ep.attachments {
        if let Ok(pool) = ipam::open(&ctx.state, &a.network) {
            for ip in a.addresses.iter().map(|n| n.addr()) {
                let _ = pool.release(ip, &ep.id);
            }
        }
    }
    let _ = ctx.state.port_claims().release(&ep.id, ports);
}

/// The allocator's cursor moves past the addresses it found (once they
/// are recorded, so a hook killed before starts from the same place and
/// takes them again).
pub(crate) fn remember_leases(ctx: &Locked, leases: &[(String, &Lease)]) {
    for (network, ip) in leases
        .iter()
        .flat_map(|(n, l)| l.found().map(move |ip| (n, ip)))
    {
        if let Err(e) = ipam::open(&ctx.state, network).and_then(|p| p.remember_last(ip)) {
            tracing::warn!(
                network,
                "next allocation starts from the beginning of the range: {e}"
            );
        }
    }
}

/// Write the intent record before touching the kernel: a hook killed from
/// here on leaves a record that gc (or the next hook for this id) undoes.
/// One killed before it leaves leases and claims without a record: the
/// next hook for this id takes them again, and gc frees them otherwise.
pub(crate) fn record_intent(ctx: &Locked, ep: &Endpoint) -> Result<()> {
    if let Err(e) = ctx.state.save_setup(ep) {
        let ports: Vec<_> = ep.ports().cloned().collect();
        give_back(ctx, ep, &ports);
        return Err(e);
    }
    killpoint::reached("recorded");
    Ok(())
}

/// After the kernel work (`wired`): done is a rename of the intent record;
/// a failure undoes everything the record names, as it stands now (what
/// turned out not to be ours, such as an interface that already existed,
/// was dropped from it).
pub(crate) fn conclude(ctx: &Locked, ep: &Endpoint, wired: Result<()>) -> Result<()> {
    match wired.and_then(|()| ctx.state.finish_setup(&ep.id)) {
        Ok(()) => {
            killpoint::reached("ready");
            Ok(())
        }
        Err(e) => {
            tracing::error!("setup failed, rolling back: {e}");
            let _ = ctx.state.save_setup(ep);
            match release::release(ctx, ep) {
                Ok(()) => Err(e),
                Err(undo) => Err(rollback_incomplete(e, undo)),
            }
        }
    }
}

pub(crate) fn rollback_incomplete(e: Error, undo: Error) -> Error {
    Error::Conflict(format!(
        "{e}; rollback incomplete (ocinet gc will retry): {undo}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_per_family_and_ipv6_only_on_a_dual_stack_network() {
        let net = Network::default_network();
        let mut req = AttachmentRequest::new(&net.name);
        assert_eq!(requested_addresses(&net, &req).unwrap(), (None, None));
        req.addresses = vec!["10.88.0.5".parse().unwrap()];
        assert_eq!(
            requested_addresses(&net, &req).unwrap(),
            (Some(Ipv4Addr::new(10, 88, 0, 5)), None)
        );
        req.ip6_field = "io.ocinet.ip6".into();
        req.addresses.push("fd00::5".parse().unwrap());
        let e = requested_addresses(&net, &req).unwrap_err().to_string();
        assert!(
            e.contains("io.ocinet.ip6") && e.contains("fd00::5") && e.contains("no IPv6 subnet"),
            "{e}"
        );
        let dual = net
            .clone()
            .with_ipv6("fd00::/64".parse().unwrap(), None, None);
        assert_eq!(
            requested_addresses(&dual, &req).unwrap().1,
            Some("fd00::5".parse().unwrap())
        );
        req.addresses.push("fd00::6".parse().unwrap());
        let e = requested_addresses(&dual, &req).unwrap_err().to_string();
        assert!(e.contains("fd00::6") && e.contains("one IPv6"), "{e}");
        req.addresses[1] = "10.88.0.6".parse().unwrap();
        let e = requested_addresses(&net, &req).unwrap_err().to_string();
        assert!(e.contains("10.88.0.6") && e.contains("one IPv4"), "{e}");
    }
}
