//! What the resolver answers, built from ocinet's state: for each
//! DNS-enabled network, its resolver address (where it listens), its
//! subnet (whose clients it serves), and the names of its running
//! containers (name, aliases, first 12 characters of the id) with their
//! address on that network. A client sees only the names of the network
//! its address belongs to.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use ocinet_common::model::network::shim_name;
use ocinet_common::model::{Driver, Endpoint, Mode, Network, Phase};
use ocinet_common::netlink::Netlink;

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
    /// The catalog of `networks` and `records`. A macvlan network's
    /// container is answered only while the resolver can reach it: its
    /// network's parent is on the host (the kernel deletes a macvlan with
    /// its parent), and, when the shim is there, the host has the route to
    /// the container through it (a container whose interface went with a
    /// parent of before gets none back when the parent is made again; a
    /// shim deleted by hand takes every route with it, and is not held
    /// against its containers: `firewall reload` puts both back).
    /// Learnt here, at each (re)build, from one dump of the host's links
    /// and one kernel-filtered route dump per shim when there is such a
    /// network, never per query; the resolver rebuilds at least every few
    /// seconds.
    pub fn build<'a>(
        networks: &[Network],
        records: impl IntoIterator<Item = &'a Named>,
    ) -> Catalog {
        let any = networks
            .iter()
            .any(|n| n.dns && n.driver == Driver::Macvlan);
        let host = match any {
            false => None,
            true => match HostView::read(networks) {
                Ok(v) => Some(v),
                // Unknown is not gone: answer as before.
                Err(e) => {
                    tracing::warn!("cannot read the host's interfaces and routes: {e}");
                    None
                }
            },
        };
        Self::build_with(networks, records, |net, ip| {
            host.as_ref().is_none_or(|h| h.reaches(net, ip))
        })
    }

    /// `build`, with `reachable` saying whether a macvlan network's
    /// container at an address is reachable (see `build`).
    pub fn build_with<'a>(
        networks: &[Network],
        records: impl IntoIterator<Item = &'a Named>,
        reachable: impl Fn(&Network, Ipv4Addr) -> bool,
    ) -> Catalog {
        let macvlans: HashMap<&str, &Network> = networks
            .iter()
            .filter(|n| n.driver == Driver::Macvlan)
            .map(|n| (n.name.as_str(), n))
            .collect();
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
                        upstreams: n
                            .dns_upstreams
                            .iter()
                            .filter_map(|u| match u {
                                std::net::IpAddr::V4(v4) => Some(*v4),
                                std::net::IpAddr::V6(_) => None,
                            })
                            .collect(),
                        rate: n
                            .dns_rate_limit
                            .unwrap_or(ocinet_common::model::network::DEFAULT_DNS_RATE),
                        internal: n.internal,
                        members_only: n.driver == Driver::Macvlan,
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
                if macvlans
                    .get(network.as_str())
                    .is_some_and(|n| !reachable(n, *ip))
                {
                    continue;
                }
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

    /// The network `client` is answered for when it asks at the resolver
    /// address `at`: its own network's, only there.
    pub fn serving(&self, client: Ipv4Addr, at: Ipv4Addr) -> Option<usize> {
        self.network_index(client)
            .filter(|i| self.networks[*i].address == at)
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

/// What the catalog needs of the host's kernel to tell which macvlan
/// containers are reachable.
struct HostView {
    links: HashMap<String, u32>,
    routes: HashSet<(Ipv4Addr, u32)>,
}

impl HostView {
    /// The host's links, and the /32 routes through the shims of
    /// `networks` (one filtered dump per shim, not the whole table).
    fn read(networks: &[Network]) -> ocinet_common::Result<HostView> {
        let mut nl = Netlink::new()?;
        let links: HashMap<String, u32> =
            nl.links()?.into_iter().map(|l| (l.name, l.index)).collect();
        let mut routes = HashSet::new();
        for n in networks
            .iter()
            .filter(|n| n.dns && n.driver == Driver::Macvlan)
        {
            let Some(shim) = links.get(&shim_name(&n.name)) else {
                continue;
            };
            routes.extend(
                nl.ipv4_routes_via(*shim)?
                    .into_iter()
                    .filter(|r| r.destination.prefix_len() == 32)
                    .map(|r| (r.destination.addr(), *shim)),
            );
        }
        Ok(HostView { links, routes })
    }

    fn reaches(&self, net: &Network, ip: Ipv4Addr) -> bool {
        let Some(parent) = net.parent.as_deref() else {
            return true;
        };
        if !self.links.contains_key(parent) {
            return false;
        }
        match self.links.get(&shim_name(&net.name)) {
            Some(shim) => self.routes.contains(&(ip, *shim)),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn macvlan(name: &str, parent: &str, subnet: &str) -> Network {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        let mut n = Network::default_network().with_subnet(subnet);
        n.name = name.into();
        n.bridge = String::new();
        n.driver = Driver::Macvlan;
        n.parent = Some(parent.into());
        n.macvlan_mode = Some(ocinet_common::model::MacvlanMode::Bridge);
        n.dns = true;
        n.dns_address = n.default_dns_address();
        n
    }

    fn named(id: &str, name: &str, on: &[(&str, &str)]) -> Named {
        Named {
            id: id.into(),
            name: name.into(),
            dns_servers: Vec::new(),
            attachments: on
                .iter()
                .map(|(n, ip)| (n.to_string(), ip.parse().unwrap(), vec![]))
                .collect(),
        }
    }

    /// Issue 21: a macvlan network whose parent was deleted has lost its
    /// containers' interfaces; their names are not answered (the other
    /// networks' are), and come back with the parent.
    #[test]
    fn names_on_a_gone_parent_are_not_answered() {
        let nets = [
            macvlan("mv1", "up0", "10.80.0.0/24"),
            macvlan("mv2", "gone0", "10.81.0.0/24"),
        ];
        let recs = [
            named("aaaa", "a", &[("mv1", "10.80.0.5")]),
            named("bbbb", "b", &[("mv2", "10.81.0.5")]),
        ];
        let cat = Catalog::build_with(&nets, &recs, |n, _| n.parent.as_deref() == Some("up0"));
        let names = |n: &str| {
            cat.networks
                .iter()
                .find(|x| x.name == n)
                .map(|x| x.names.len())
                .unwrap()
        };
        assert!(names("mv1") > 0);
        assert_eq!(names("mv2"), 0);
        assert!(cat.network_index("10.81.0.5".parse().unwrap()).is_none());
        assert!(cat.network_index("10.80.0.5".parse().unwrap()).is_some());
        // Still listened on: the parent may come back.
        assert_eq!(cat.listen_addresses().len(), 2);
        let back = Catalog::build_with(&nets, &recs, |_, _| true);
        assert!(back.network_index("10.81.0.5".parse().unwrap()).is_some());
    }

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
