//! What the resolver answers, built from ocinet's state: for each
//! DNS-enabled network, its resolver address (where it listens), its
//! subnet (whose clients it serves), and the names of its running
//! containers (name, aliases, first 12 characters of the id) with their
//! address on that network. A client sees only the names of the network
//! its address belongs to.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use ocinet_common::model::{Endpoint, Mode, Network, Phase};

/// One DNS-enabled network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkNames {
    pub name: String,
    /// Where the resolver listens: the gateway (bridge), or the network's
    /// DNS address on its shim (macvlan).
    pub address: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub upstreams: Vec<Ipv4Addr>,
    /// Queries per second per client; 0: no limit.
    pub rate: u32,
    /// No way out: its containers' other names are not forwarded (the
    /// resolver would be their way out).
    pub internal: bool,
    /// Only its containers are answered, not every address of its subnet:
    /// a macvlan network's subnet is a segment with other hosts on it,
    /// which must not get an open resolver.
    pub members_only: bool,
    /// Lower-case name -> addresses.
    pub names: HashMap<String, Vec<Ipv4Addr>>,
    /// Address -> the container's name.
    pub reverse: HashMap<Ipv4Addr, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub networks: Vec<NetworkNames>,
    /// A container's own upstream servers (`io.ocinet.dns`), by address.
    pub client_servers: HashMap<Ipv4Addr, Vec<Ipv4Addr>>,
}

/// What the resolver keeps of a record: a finished container on networks,
/// by its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub name: String,
    pub dns_servers: Vec<Ipv4Addr>,
    /// (network, address, aliases) of each attachment that is done.
    pub attachments: Vec<(String, Ipv4Addr, Vec<String>)>,
}

impl Named {
    /// None for a record with nothing to answer on the networks `dns`
    /// (names of the DNS-enabled networks).
    pub fn of(e: &Endpoint, dns: &std::collections::HashSet<&str>) -> Option<Named> {
        if e.phase != Phase::Ready || !matches!(e.mode, Mode::Networks(_)) {
            return None;
        }
        let attachments: Vec<_> = e
            .attachments
            .iter()
            // Appears once its setup (or connect) is done, goes at
            // teardown (or disconnect).
            .filter(|a| a.changing.is_none() && dns.contains(a.network.as_str()))
            .filter_map(|a| Some((a.network.clone(), a.ipv4()?, a.aliases.clone())))
            .collect();
        (!attachments.is_empty()).then(|| Named {
            id: e.id.clone(),
            name: e.name.clone(),
            dns_servers: e.dns_servers.clone(),
            attachments,
        })
    }
}

impl Catalog {
    pub fn build<'a>(
        networks: &[Network],
        records: impl IntoIterator<Item = &'a Named>,
    ) -> Catalog {
        let mut by_name: BTreeMap<&str, NetworkNames> = networks
            .iter()
            .filter(|n| n.dns)
            .map(|n| {
                (
                    n.name.as_str(),
                    NetworkNames {
                        name: n.name.clone(),
                        address: n.resolver_address(),
                        subnet: n.subnet(),
                        upstreams: n.dns_upstreams.clone(),
                        rate: n
                            .dns_rate_limit
                            .unwrap_or(ocinet_common::model::network::DEFAULT_DNS_RATE),
                        internal: n.internal,
                        members_only: n.driver == ocinet_common::model::Driver::Macvlan,
                        names: HashMap::new(),
                        reverse: HashMap::new(),
                    },
                )
            })
            .collect();
        let mut client_servers = HashMap::new();
        // Sorted by id, so that a name two containers share lists its
        // addresses in one order whatever order the records came in.
        let mut records: Vec<&Named> = records.into_iter().collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        for e in records {
            for (network, ip, aliases) in &e.attachments {
                let Some(net) = by_name.get_mut(network.as_str()) else {
                    continue;
                };
                let ip = *ip;
                let short = &e.id[..e.id.len().min(12)];
                let mut keys = vec![e.name.to_ascii_lowercase(), short.to_ascii_lowercase()];
                keys.extend(aliases.iter().map(|x| x.to_ascii_lowercase()));
                // A name no client can ask for (a container named after
                // an id like `a..b`, `localhost`, or a record an earlier
                // version accepted) is not served: the resolver keeps
                // `localhost` and the reverse names for itself.
                for k in keys
                    .into_iter()
                    .filter(|k| ocinet_common::validate::resolvable(k))
                {
                    let ips = net.names.entry(k).or_default();
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                net.reverse.insert(ip, e.name.clone());
                if !e.dns_servers.is_empty() {
                    client_servers.insert(ip, e.dns_servers.clone());
                }
            }
        }
        Catalog {
            networks: by_name.into_values().collect(),
            client_servers,
        }
    }

    /// The index in `networks` of the network whose subnet holds `client`
    /// (and, for a macvlan network, whose container it is): the one it is
    /// answered for; none, refused.
    pub fn network_index(&self, client: Ipv4Addr) -> Option<usize> {
        self.networks.iter().position(|n| {
            n.subnet.contains(&client) && (!n.members_only || n.reverse.contains_key(&client))
        })
    }

    /// Whether any DNS-enabled network has a container: else the resolver
    /// has nothing to serve and ends.
    pub fn serves_anyone(&self) -> bool {
        self.networks.iter().any(|n| !n.reverse.is_empty())
    }

    /// Where to listen: the resolver address (gateway, or a macvlan
    /// network's DNS address) of every DNS-enabled network, with containers
    /// or not yet, so that a network's first container is answered from its
    /// first query (sockets bind before the address exists: IP_FREEBIND).
    pub fn listen_addresses(&self) -> Vec<Ipv4Addr> {
        self.networks.iter().map(|n| n.address).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_no_client_can_ask_for_are_not_served() {
        let mut net = Network::new(
            "web",
            "10.1.0.0/24".parse().unwrap(),
            None,
            None,
            None,
            None,
            false,
        )
        .unwrap();
        net.dns = true;
        let ip = Ipv4Addr::new(10, 1, 0, 2);
        // As a record of an earlier version, or a name taken from an id.
        let named = |id: &str, name: &str, aliases: &[&str]| Named {
            id: id.into(),
            name: name.into(),
            dns_servers: Vec::new(),
            attachments: vec![(
                "web".into(),
                ip,
                aliases.iter().map(|a| a.to_string()).collect(),
            )],
        };
        let c = Catalog::build(
            &[net],
            &[
                named("localhost", "localhost", &["x.", "a..b", "db"]),
                named("c2", "web_1", &["2.0.1.10.in-addr.arpa"]),
            ],
        );
        let mut names: Vec<&str> = c.networks[0].names.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["c2", "db", "web_1"]);
    }
}
