//! What the store holds for containers beyond their records: address
//! leases and published-port claims, each with whether a record accounts
//! for it. `ocinet leases` and `ocinet ports` show them; `ocinet gc`
//! releases those no record accounts for, by the same rule.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ocinet_common::ipam;
use ocinet_common::model::Endpoint;
use ocinet_common::store::ports::Claim;
use ocinet_common::{Error, Result};

use crate::context::Context;

/// Every record by its id. `None`: a record that exists but cannot be
/// read; it counts as accounting for everything its id holds, since its
/// container may be running (gc must not free what it uses).
pub type Records = BTreeMap<String, Option<Endpoint>>;

/// Every record, and the errors of those that could not be read. An
/// unlistable directory is an error: with no records every lease would
/// look orphaned.
pub fn records(ctx: &Context) -> Result<(Records, Vec<Error>)> {
    let mut records = Records::new();
    let mut bad = Vec::new();
    for (id, read) in ctx.state.read_endpoints()? {
        match read {
            Ok(ep) => records.insert(id, Some(ep)),
            Err(e) => {
                bad.push(e);
                records.insert(id, None)
            }
        };
    }
    Ok((records, bad))
}

fn accounted(records: &Records, holder: &str, holds: impl Fn(&Endpoint) -> bool) -> bool {
    match records.get(holder) {
        None => false,
        Some(None) => true,
        Some(Some(ep)) => holds(ep),
    }
}

/// Whether `holder`'s record has `ip` on `network`.
pub fn accounts_for_lease(records: &Records, holder: &str, network: &str, ip: IpAddr) -> bool {
    accounted(records, holder, |ep| {
        ep.attachment_on(network).is_some_and(|a| a.holds(ip))
    })
}

/// Whether the claim's holder's record publishes its ports.
pub fn accounts_for_claim(records: &Records, claim: &Claim) -> bool {
    accounted(records, &claim.holder, |ep| {
        let ports: Vec<_> = ep.ports().cloned().collect();
        claim.is_held_by(&ports)
    })
}

/// One lease of a network's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub network: String,
    pub ip: IpAddr,
    pub holder: String,
    /// No record accounts for it (`ocinet gc` releases it).
    pub orphaned: bool,
}

/// Every lease of every pool, including pools of networks whose
/// definition is gone or broken (their leases still hold addresses), by
/// network and address; pools that cannot be read come back as errors
/// beside the rest.
pub fn leases(ctx: &Context, records: &Records) -> Result<(Vec<Lease>, Vec<Error>)> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for network in ipam::leased_networks(&ctx.state)? {
        let leases = match ipam::open(&ctx.state, &network).and_then(|p| p.leases()) {
            Ok(l) => l,
            Err(e) => {
                bad.push(e);
                continue;
            }
        };
        for (ip, holder) in leases {
            let orphaned = !accounts_for_lease(records, &holder, &network, ip);
            out.push(Lease {
                network: network.clone(),
                ip,
                holder,
                orphaned,
            });
        }
    }
    Ok((out, bad))
}

/// Every published-port claim (a range claimed whole is one), and
/// whether a record accounts for it.
pub fn port_claims(ctx: &Context, records: &Records) -> Result<Vec<(Claim, bool)>> {
    Ok(ctx
        .state
        .port_claims()
        .list()?
        .into_iter()
        .map(|c| {
            let orphaned = !accounts_for_claim(records, &c);
            (c, orphaned)
        })
        .collect())
}
