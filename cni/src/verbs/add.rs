//! ADD: attach the container to the configuration's network as
//! `CNI_IFNAME`. The first attachment of a container is a setup, a later
//! one (another network, another interface) a connect. Asked again for an
//! attachment it made, it answers with what it made (idempotent per
//! container id, interface and network); an interface of that name that
//! is not ocinet's stays an error, as the spec wants.

use ocinet_common::model::{AttachmentRequest, DnsRequest, Mode, Origin, Phase, Request, Settings};
use ocinet_common::validate;
use ocinet_core::connect::{self, ConnectOptions};
use ocinet_core::context::Context;
use rscni_types::error::Error as CniError;
use rscni_types::version::SpecVersion;

use super::{attachment_index, network};
use crate::conf::Conf;
use crate::env::Invocation;
use crate::errors::to_cni;
use crate::result;

pub fn run(
    ctx: &Context,
    inv: &Invocation,
    conf: &Conf,
    version: SpecVersion,
) -> Result<String, CniError> {
    let netns = inv
        .netns
        .clone()
        .ok_or_else(|| CniError::missing_env(&["CNI_NETNS"]))?;
    // Before anything else: a record of this container elsewhere would be
    // released below, and the network made, for a request that cannot be
    // served.
    // Opened before the lock (a path that blocks on open holds up this
    // call alone), and kept for the setup.
    let opened = ocinet_common::netns::open_netns(&netns);
    let here = opened
        .as_ref()
        .ok()
        .and_then(|f| ocinet_common::netns::id_of_fd(f).ok());
    if let Some(id) = here {
        ocinet_core::setup::refuse_own_netns("CNI_NETNS", &netns, id).map_err(to_cni)?;
    }
    for (ip, why) in &conf.wanted.dns_left_out {
        tracing::warn!(%ip, "runtimeConfig.dns.servers entry left out: {why}");
    }
    // One lock for the whole ADD: the network made, what the record says
    // decided on, the setup or connect, and the result read back.
    let ctx = &ctx.lock().map_err(to_cni)?;
    let net = network::ensure(ctx, conf)?;
    // runtimeConfig.ips first, CNI_ARGS IP otherwise, per family; errors
    // name where each came from.
    let ip = conf.wanted.ip.or(inv.args.ip);
    let ip6 = conf.wanted.ip6.or(inv.args.ip6);
    let field = |from_conf: bool| {
        if from_conf {
            "runtimeConfig.ips"
        } else {
            "CNI_ARGS IP"
        }
    };
    let ip_field = field(conf.wanted.ip.is_some()).to_string();
    let ip6_field = field(conf.wanted.ip6.is_some()).to_string();
    let addresses: Vec<std::net::IpAddr> = ip
        .map(std::net::IpAddr::V4)
        .into_iter()
        .chain(ip6.map(std::net::IpAddr::V6))
        .collect();
    let mac = match conf.wanted.mac.as_deref().or(inv.args.mac.as_deref()) {
        Some(m) => Some(
            validate::mac("runtimeConfig.mac", m)
                .map_err(|e| CniError::InvalidNetworkConfig(e.to_string()))?,
        ),
        None => None,
    };
    // A record of a setup killed midway is no container: the setup below
    // undoes it first (the core does, as for a hook's).
    let existing = ctx
        .state
        .load_endpoint(&inv.container_id)
        .map_err(to_cni)?
        .filter(|ep| ep.phase == Phase::Ready);
    // The same container id in another namespace: the runtime made the
    // container again without a DEL; what the old one had goes first.
    let existing = match existing {
        // (A path that does not open says nothing: the setup refuses it.)
        Some(ep) if ep.origin == Origin::Cni && here.is_some() && ep.netns_id != here => {
            tracing::warn!("recorded in another network namespace: releasing that first");
            ocinet_core::release::release(ctx, &ep).map_err(to_cni)?;
            None
        }
        other => other,
    };
    match &existing {
        Some(ep)
            if attachment_index(ep, conf, &inv.ifname)
                .is_some_and(|i| ep.attachments[i].changing.is_none()) =>
        {
            tracing::info!("already attached");
        }
        Some(ep) if ep.origin != Origin::Cni => {
            return Err(to_cni(ocinet_common::Error::Conflict(format!(
                "container {} has networking set up by ocinet's OCI hook: it is not the CNI runtime's to change",
                ep.id
            ))))
        }
        Some(_) => {
            if !conf.wanted.ports.is_empty() {
                return Err(CniError::UnsupportedNetworkConfiguration(format!(
                    "runtimeConfig.portMappings on a second attachment ({}): ports are published on a container's first network",
                    inv.ifname
                )));
            }
            if mac.is_some() {
                return Err(CniError::UnsupportedNetworkConfiguration(
                    "a MAC for a second attachment: its MAC follows its address".into(),
                ));
            }
            connect::connect_locked(
                ctx,
                &conf.network,
                &inv.container_id,
                &ConnectOptions {
                    addresses: addresses.clone(),
                    ip_field: ip_field.clone(),
                    ip6_field: ip6_field.clone(),
                    aliases: conf.wanted.aliases.clone(),
                    aliases_field: "runtimeConfig.aliases".into(),
                    ranges: conf.wanted.ranges.clone(),
                    ranges_field: "runtimeConfig.ipRanges".into(),
                    interface: Some(inv.ifname.clone()),
                    by: Origin::Cni,
                },
            )
            .map_err(to_cni)?;
        }
        None => {
            // A pod name that cannot be a container name (a DNS name, a
            // file name) is not the container's name: the short id is.
            let name = inv
                .args
                .pod_name
                .clone()
                .filter(|n| match validate::container_name("CNI_ARGS K8S_POD_NAME", n) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!("{e}: ignored, the container is named by its id");
                        false
                    }
                })
                .unwrap_or_else(|| inv.container_id.chars().take(12).collect());
            let req = Request {
                id: inv.container_id.clone(),
                pid: None,
                netns: Some(netns.clone()),
                netns_field: "CNI_NETNS".into(),
                // The runtime's: it outlives the DEL.
                netns_fresh: false,
                rootfs: None,
                origin: Origin::Cni,
                settings: Settings {
                    mode: Mode::Networks(vec![conf.network.clone()]),
                    name,
                    attachments: vec![AttachmentRequest {
                        interface: Some(inv.ifname.clone()),
                        interface_field: "CNI_IFNAME".into(),
                        addresses,
                        ip_field,
                        ip6_field,
                        mac,
                        mac_field: "runtimeConfig.mac".into(),
                        aliases: conf.wanted.aliases.clone(),
                        aliases_field: "runtimeConfig.aliases".into(),
                        ranges: conf.wanted.ranges.clone(),
                        ranges_field: "runtimeConfig.ipRanges".into(),
                        ..AttachmentRequest::new(&conf.network)
                    }],
                    ports: conf.wanted.ports.clone(),
                    ports_field: "runtimeConfig.portMappings".into(),
                    dns: if conf.wanted.dns_servers.is_empty() {
                        DnsRequest::Networks
                    } else {
                        DnsRequest::Servers(conf.wanted.dns_servers.clone())
                    },
                },
            };
            // A path that does not open is refused here, naming it.
            let target = ocinet_core::setup::Target::of(&req, Some(opened.map_err(to_cni)?))
                .map_err(to_cni)?;
            ocinet_core::setup::setup_locked(ctx, &req, target).map_err(to_cni)?;
        }
    }
    let ep = ctx
        .state
        .load_endpoint(&inv.container_id)
        .map_err(to_cni)?
        .ok_or_else(|| {
            CniError::Custom(
                crate::errors::FAILED,
                "ocinet failed".into(),
                "the record vanished after ADD".into(),
            )
        })?;
    let att = attachment_index(&ep, conf, &inv.ifname)
        .map(|i| &ep.attachments[i])
        .ok_or_else(|| {
            CniError::Custom(
                crate::errors::FAILED,
                "ocinet failed".into(),
                "the attachment vanished after ADD".into(),
            )
        })?;
    let mut ours = result::of(att, &net, &netns);
    // The runtime writes the container's resolv.conf from the result: its
    // own search domains and options go there beside the resolver.
    if let Some(d) = ours.dns.as_mut() {
        if !conf.wanted.dns_searches.is_empty() {
            d.search = Some(conf.wanted.dns_searches.clone());
        }
        if !conf.wanted.dns_options.is_empty() {
            d.options = Some(conf.wanted.dns_options.clone());
        }
    }
    Ok(result::render(
        version,
        result::after(conf.net.prev_result.as_ref(), ours),
    ))
}
