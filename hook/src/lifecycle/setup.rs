use std::fs::File;
use std::path::Path;

use ocinet_common::model::{Endpoint, Mode, Phase, ProcessId};
use ocinet_common::netlink::Netlink;
use ocinet_common::{netns, Error, Result};

use super::{drivers, release};
use crate::cli::ContainerDefaults;
use crate::context::Context;
use crate::networks;
use crate::oci::{self, OciState};
use crate::settings::{self, Settings};

pub fn setup(ctx: &Context, st: &OciState, defaults: &ContainerDefaults) -> Result<()> {
    let bundle = oci::load_bundle(&st.bundle)?;
    let mut annotations = bundle.annotations();
    annotations.extend(st.annotations.clone());
    let settings = settings::resolve(&st.id, &annotations, defaults)?;
    let ns_path = bundle.netns_path(st.pid)?;
    let ns = ns_path.as_deref().map(netns::open_netns).transpose()?;
    let netns_id = ns.as_ref().map(netns::id_of_fd).transpose()?;

    let _lock = ctx.lock()?;
    if let Some(existing) = ctx.state.load_endpoint(&st.id)? {
        if existing.phase == Phase::Ready && existing.netns_id == netns_id {
            // Both createRuntime and prestart configured, or a retried hook.
            tracing::info!("already set up");
            return Ok(());
        }
        if !existing.is_stale() {
            return Err(Error::Conflict(format!(
                "container {} already has an ocinet endpoint in another network namespace",
                st.id
            )));
        }
        tracing::warn!("removing a stale endpoint left by an earlier container with this id");
        release::release(ctx, &existing)?;
    }

    let ep = Endpoint {
        container: st.pid.and_then(ProcessId::of),
        netns_id,
        hook: ProcessId::of(std::process::id() as i32),
        ..Endpoint::new(&st.id, &settings.name, settings.mode.clone())
    };

    match &settings.mode {
        Mode::Host => {
            if ns.is_some() {
                tracing::warn!("io.ocinet.network=host, but the container has a network namespace of its own; leaving it alone");
            }
            save_ready(ctx, ep)
        }
        Mode::None => {
            let ns = require_netns(ns.as_ref(), &settings)?;
            super::inside::enter(ns)?;
            save_ready(ctx, ep)
        }
        Mode::Container(target) => {
            let ep = join_container(ctx, ep, target)?;
            save_ready(ctx, ep)
        }
        Mode::Bridge(name) => {
            let ns = require_netns(ns.as_ref(), &settings)?;
            let ns_path = ns_path.as_deref().unwrap_or(Path::new(""));
            let mut host = Netlink::new()?;
            let net = networks::get(ctx, name, &mut host)?;
            drivers::for_network(net).setup(ctx, ep, &settings, &mut host, ns, ns_path)
        }
    }
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

fn save_ready(ctx: &Context, mut ep: Endpoint) -> Result<()> {
    ep.phase = Phase::Ready;
    ctx.state.save_endpoint(&ep)?;
    tracing::info!(mode = %ep.mode.label(), "set up");
    Ok(())
}

/// `container:<id>`: the runtime already put this container into the
/// target's namespace (linux.namespaces path); check that, and record the
/// link so ps and the exporter can attribute it.
fn join_container(ctx: &Context, mut ep: Endpoint, target: &str) -> Result<Endpoint> {
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
    ep.ip = t.ip;
    ep.prefix_len = t.prefix_len;
    ep.gateway = t.gateway;
    ep.mac = t.mac.clone();
    ep.interface = t.interface.clone();
    Ok(ep)
}
