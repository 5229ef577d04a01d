//! What the resolver answers, built from ocinet's state: for each
//! DNS-enabled network, its resolver address (where it listens), its
//! subnet (whose clients it serves), and the names of its running
//! containers (name, aliases, first 12 characters of the id) with their
//! address on that network. A client sees only the names of the network
//! its address belongs to. A dual-stack network has its IPv6 side beside
//! the IPv4 one: the resolver listens on its IPv6 gateway too, and its
//! containers' names have their IPv6 addresses (AAAA) as well. An
//! IPv6-only network has the IPv6 side alone: its names have AAAA records
//! and no A, and the resolver listens on no IPv4 address for it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use ocinet_common::model::network::shim_name;
use ocinet_common::model::{Driver, Endpoint, Mode, Network, Phase};
use ocinet_common::netlink::Netlink;

/// One DNS-enabled network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkNames {
    pub name: String,
    /// Where the resolver listens over IPv4: the gateway (bridge), or the
    /// network's DNS address on its shim (macvlan). None, with `subnet`,
    /// on an IPv6-only network.
    pub address: Option<Ipv4Addr>,
    pub subnet: Option<Ipv4Net>,
    /// The network's IPv6 side (dual-stack or IPv6-only): where the
    /// resolver listens (the bridge's IPv6 address), and the subnet its
    /// IPv6 clients and reverse names are in.
    pub address6: Option<Ipv6Addr>,
    pub subnet6: Option<Ipv6Net>,
    pub upstreams: Vec<IpAddr>,
    /// Queries per second per client; 0: no limit.
    pub rate: u32,
    /// No way out: its containers' other names are not forwarded (the
    /// resolver would be their way out).
    pub internal: bool,
    /// Only its containers are answered, not every address of its subnet:
    /// a macvlan network's subnet is a segment with other hosts on it,
    /// which must not get an open resolver.
    pub members_only: bool,
    /// Lower-case name -> IPv4 addresses (A). A name whose containers
    /// have only IPv6 addresses is in `names6` alone.
    pub names: HashMap<String, Vec<Ipv4Addr>>,
    /// Address -> the container's name.
    pub reverse: HashMap<Ipv4Addr, String>,
    /// Lower-case name -> IPv6 addresses (AAAA), on a network with IPv6.
    pub names6: HashMap<String, Vec<Ipv6Addr>>,
    /// IPv6 address -> the container's name. Also who is served over
    /// IPv6: only containers' leased addresses (see `network_index`).
    pub reverse6: HashMap<Ipv6Addr, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub networks: Vec<NetworkNames>,
    /// A container's own upstream servers (`io.ocinet.dns`), by each of
    /// its addresses.
    pub client_servers: HashMap<IpAddr, Vec<IpAddr>>,
}

/// What the resolver keeps of a record: a finished container on networks,
/// by its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub name: String,
    pub dns_servers: Vec<IpAddr>,
    /// Each attachment that is done.
    pub attachments: Vec<Named1>,
}

/// A container's attachment as the resolver keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named1 {
    pub network: String,
    /// Its IPv4 address; none on an IPv6-only network.
    pub ip: Option<Ipv4Addr>,
    /// Its IPv6 address, on a network with IPv6. One of the two at least.
    pub ip6: Option<Ipv6Addr>,
    pub aliases: Vec<String>,
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
            .filter(|a| a.ipv4().is_some() || a.ipv6().is_some())
            .map(|a| Named1 {
                network: a.network.clone(),
                ip: a.ipv4(),
                ip6: a.ipv6(),
                aliases: a.aliases.clone(),
            })
            .collect();
        (!attachments.is_empty()).then(|| Named {
            id: e.id.clone(),
            name: e.name.clone(),
            dns_servers: e.dns_servers.to_vec(),
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
            .any(|n| n.dns && n.driver() == Driver::Macvlan);
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
        reachable: impl Fn(&Network, IpAddr) -> bool,
    ) -> Catalog {
        let macvlans: HashMap<&str, &Network> = networks
            .iter()
            .filter(|n| n.driver() == Driver::Macvlan)
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
                        subnet: n.resolver_address().and(n.v4().map(|v4| v4.subnet)),
                        address6: n.resolver_address6(),
                        subnet6: n.resolver_address6().and(n.subnet6()),
                        upstreams: n.dns_upstreams.clone(),
                        rate: n
                            .dns_rate_limit
                            .unwrap_or(ocinet_common::model::network::DEFAULT_DNS_RATE),
                        internal: n.internal,
                        members_only: n.driver() == Driver::Macvlan,
                        names: HashMap::new(),
                        reverse: HashMap::new(),
                        names6: HashMap::new(),
                        reverse6: HashMap::new(),
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
            for Named1 {
                network,
                ip,
                ip6,
                aliases,
            } in &e.attachments
            {
                // A macvlan network's containers are answered by the
                // addresses the resolver reaches them at.
                let (ip, ip6) = match macvlans.get(network.as_str()) {
                    Some(n) => (
                        ip.filter(|a| reachable(n, IpAddr::V4(*a))),
                        ip6.filter(|a| reachable(n, IpAddr::V6(*a))),
                    ),
                    None => (*ip, *ip6),
                };
                let Some(net) = by_name.get_mut(network.as_str()) else {
                    continue;
                };
                // Only the families the network has.
                let ip = ip.filter(|a| net.subnet.is_some_and(|s| s.contains(a)));
                let ip6 = ip6.filter(|a| net.subnet6.is_some_and(|s| s.contains(a)));
                if ip.is_none() && ip6.is_none() {
                    continue;
                }
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
                    if let Some(ip6) = ip6 {
                        let ips = net.names6.entry(k.clone()).or_default();
                        if !ips.contains(&ip6) {
                            ips.push(ip6);
                        }
                    }
                    if let Some(ip) = ip {
                        let ips = net.names.entry(k).or_default();
                        if !ips.contains(&ip) {
                            ips.push(ip);
                        }
                    }
                }
                if let Some(ip) = ip {
                    net.reverse.insert(ip, e.name.clone());
                }
                if let Some(ip6) = ip6 {
                    net.reverse6.insert(ip6, e.name.clone());
                }
                if !e.dns_servers.is_empty() {
                    if let Some(ip) = ip {
                        client_servers.insert(IpAddr::V4(ip), e.dns_servers.clone());
                    }
                    if let Some(ip6) = ip6 {
                        client_servers.insert(IpAddr::V6(ip6), e.dns_servers.clone());
                    }
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
    /// answered for; none, refused. Over IPv6, only a container's leased
    /// address is served: a /64 gives a container more source addresses
    /// than any per-client limit could keep buckets for, and nobody else
    /// on the bridge needs the resolver.
    pub fn network_index(&self, client: IpAddr) -> Option<usize> {
        match client {
            IpAddr::V4(c) => self.networks.iter().position(|n| {
                n.subnet.is_some_and(|s| s.contains(&c))
                    && (!n.members_only || n.reverse.contains_key(&c))
            }),
            IpAddr::V6(c) => match c.to_ipv4_mapped() {
                // An IPv4 client seen through an IPv6 socket.
                Some(v4) => self.network_index(IpAddr::V4(v4)),
                None => self.networks.iter().position(|n| {
                    n.subnet6.is_some_and(|s| s.contains(&c)) && n.reverse6.contains_key(&c)
                }),
            },
        }
    }

    /// The network `client` is answered for when it asks at the resolver
    /// address `at`: its own network's, only there (over either family).
    pub fn serving(&self, client: IpAddr, at: IpAddr) -> Option<usize> {
        self.network_index(client).filter(|i| {
            let n = &self.networks[*i];
            match at {
                IpAddr::V4(at) => n.address == Some(at),
                IpAddr::V6(at) => n.address6 == Some(at),
            }
        })
    }

    /// Whether any DNS-enabled network has a container: else the resolver
    /// has nothing to serve and ends.
    pub fn serves_anyone(&self) -> bool {
        self.networks
            .iter()
            .any(|n| !n.reverse.is_empty() || !n.reverse6.is_empty())
    }

    /// Where to listen: the resolver address (gateway, or a macvlan
    /// network's DNS address) of every DNS-enabled network, with containers
    /// or not yet, so that a network's first container is answered from its
    /// first query (sockets bind before the address exists: IP_FREEBIND,
    /// IPV6_FREEBIND). A network's IPv6 gateway too; an IPv6-only
    /// network's alone (never an unspecified address, which would be
    /// every address of the host).
    pub fn listen_addresses(&self) -> Vec<IpAddr> {
        self.networks
            .iter()
            .flat_map(|n| {
                n.address
                    .map(IpAddr::V4)
                    .into_iter()
                    .chain(n.address6.map(IpAddr::V6))
            })
            .filter(|a| !a.is_unspecified())
            .collect()
    }
}

/// What the catalog needs of the host's kernel to tell which macvlan
/// containers are reachable.
struct HostView {
    links: HashMap<String, u32>,
    routes: HashSet<(IpAddr, u32)>,
}

impl HostView {
    /// The host's links, and the /32 and /128 routes through the shims of
    /// `networks` (one filtered dump per shim and family, not the whole
    /// table).
    fn read(networks: &[Network]) -> ocinet_common::Result<HostView> {
        let mut nl = Netlink::new()?;
        let links: HashMap<String, u32> =
            nl.links()?.into_iter().map(|l| (l.name, l.index)).collect();
        let mut routes = HashSet::new();
        for n in networks
            .iter()
            .filter(|n| n.dns && n.driver() == Driver::Macvlan)
        {
            let Some(shim) = links.get(&shim_name(&n.name)) else {
                continue;
            };
            let mut via = nl.ipv4_routes_via(*shim)?;
            if n.dns_address6().is_some() {
                via.extend(nl.ipv6_routes_via(*shim)?);
            }
            routes.extend(
                via.into_iter()
                    .filter(|r| r.destination.prefix_len() == r.destination.max_prefix_len())
                    .map(|r| (r.destination.addr(), *shim)),
            );
        }
        Ok(HostView { links, routes })
    }

    fn reaches(&self, net: &Network, ip: IpAddr) -> bool {
        let Some(parent) = net.parent() else {
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
        n.dns = true;
        let dns_address = n.default_dns_address();
        n.options =
            ocinet_common::model::DriverOptions::Macvlan(ocinet_common::model::MacvlanOptions {
                parent: parent.into(),
                mode: ocinet_common::model::MacvlanMode::Bridge,
                dns_address,
                dns_address6: None,
            });
        n
    }

    fn named(id: &str, name: &str, on: &[(&str, &str)]) -> Named {
        Named {
            id: id.into(),
            name: name.into(),
            dns_servers: Vec::new(),
            attachments: on
                .iter()
                .map(|(n, ip)| Named1 {
                    network: n.to_string(),
                    ip: Some(ip.parse().unwrap()),
                    ip6: None,
                    aliases: vec![],
                })
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
        let cat = Catalog::build_with(&nets, &recs, |n, _| n.parent() == Some("up0"));
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

    fn bridge(name: &str, v4: &str, v6: Option<&str>) -> Network {
        let mut n = Network::new(name, v4.parse().unwrap(), None, None, None, None, false).unwrap();
        if let Some(v6) = v6 {
            n = n.with_ipv6(v6.parse().unwrap(), None, None);
        }
        n.dns = true;
        n
    }

    /// Issue 22: a dual-stack network's names have their IPv6 addresses,
    /// its resolver listens on both gateways, and answers an IPv6 client
    /// (a container's leased address only) at its own network's IPv6
    /// gateway only; an IPv4-only network has no IPv6 side.
    #[test]
    fn a_dual_stack_network_in_the_catalog() {
        let nets = [
            bridge("dual", "10.1.0.0/24", Some("fd00:1::/64")),
            bridge("v4", "10.2.0.0/24", None),
            bridge("dual2", "10.3.0.0/24", Some("fd00:3::/64")),
        ];
        let ip6 = |s: &str| -> Option<Ipv6Addr> { Some(s.parse().unwrap()) };
        let rec = Named {
            id: "0123456789abcdef".into(),
            name: "Web".into(),
            dns_servers: vec!["10.9.9.9".parse().unwrap()],
            attachments: vec![
                Named1 {
                    network: "dual".into(),
                    ip: Some("10.1.0.2".parse().unwrap()),
                    ip6: ip6("fd00:1::2"),
                    aliases: vec!["db".into()],
                },
                // An IPv6 address the IPv4-only network cannot have is
                // not taken from a record that says so.
                Named1 {
                    network: "v4".into(),
                    ip: Some("10.2.0.2".parse().unwrap()),
                    ip6: ip6("fd00:2::2"),
                    aliases: vec![],
                },
                Named1 {
                    network: "dual2".into(),
                    ip: Some("10.3.0.2".parse().unwrap()),
                    ip6: ip6("fd00:3::2"),
                    aliases: vec![],
                },
            ],
        };
        let c = Catalog::build(&nets, [&rec]);
        let by = |n: &str| c.networks.iter().find(|x| x.name == n).unwrap();
        let dual = by("dual");
        assert_eq!(dual.address6, ip6("fd00:1::1"));
        for k in ["web", "db", "0123456789ab"] {
            assert_eq!(dual.names6[k], [ip6("fd00:1::2").unwrap()], "{k}");
            assert_eq!(dual.names[k], ["10.1.0.2".parse::<Ipv4Addr>().unwrap()]);
        }
        assert_eq!(dual.reverse6[&ip6("fd00:1::2").unwrap()], "Web");
        let v4 = by("v4");
        assert_eq!((v4.address6, v4.subnet6), (None, None));
        assert!(v4.names6.is_empty() && v4.reverse6.is_empty());
        let mut listen = c.listen_addresses();
        listen.sort();
        let want: Vec<IpAddr> = ["10.1.0.1", "10.2.0.1", "10.3.0.1", "fd00:1::1", "fd00:3::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(listen, want);
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let i = c.networks.iter().position(|n| n.name == "dual");
        assert_eq!(c.serving(ip("fd00:1::2"), ip("fd00:1::1")), i);
        assert_eq!(c.serving(ip("10.1.0.2"), ip("10.1.0.1")), i);
        // Another network's IPv6 gateway (the host routes it there):
        // refused, as over IPv4.
        assert_eq!(c.serving(ip("fd00:1::2"), ip("fd00:3::1")), None);
        assert_eq!(c.serving(ip("10.1.0.2"), ip("10.3.0.1")), None);
        // An address of the subnet no container has (a container that
        // added one to its interface, the host's own gateway): refused.
        assert_eq!(c.serving(ip("fd00:1::99"), ip("fd00:1::1")), None);
        assert_eq!(c.serving(ip("fd00:1::1"), ip("fd00:1::1")), None);
        assert_eq!(c.network_index(ip("fd00:2::2")), None);
        // An IPv4 client through an IPv6 socket is the IPv4 client.
        assert_eq!(c.network_index(ip("::ffff:10.1.0.2")), i);
        // Its own servers, by either address.
        assert!(c.client_servers.contains_key(&ip("fd00:1::2")));
        assert!(c.client_servers.contains_key(&ip("10.1.0.2")));
    }

    /// Issue 22: an IPv6-only network has no IPv4 side: the resolver
    /// listens on its IPv6 gateway alone (never 0.0.0.0), its names have
    /// AAAA records and no A, its containers are served at that address
    /// only, and a network with them counts as serving someone.
    #[test]
    fn an_ipv6_only_network_in_the_catalog() {
        let mut six = Network::default_network();
        six.subnets.clear();
        six = six.with_ipv6("fd00:6::/64".parse().unwrap(), None, None);
        six.name = "six".into();
        six.options = ocinet_common::model::DriverOptions::Bridge(
            ocinet_common::model::BridgeOptions::named("six0"),
        );
        six.dns = true;
        assert!(!six.has_ipv4());
        let nets = [six, bridge("v4", "10.2.0.0/24", None)];
        let ip6 = |s: &str| -> Ipv6Addr { s.parse().unwrap() };
        let on_six = |id: &str, name: &str, v4: Option<&str>, a: &str, aliases: &[&str]| Named {
            id: id.into(),
            name: name.into(),
            dns_servers: vec!["10.9.9.9".parse().unwrap()],
            attachments: vec![Named1 {
                network: "six".into(),
                ip: v4.map(|v| v.parse().unwrap()),
                ip6: Some(ip6(a)),
                aliases: aliases.iter().map(|x| x.to_string()).collect(),
            }],
        };
        let recs = [
            on_six("aaaaaaaaaaaaaaaa", "a", None, "fd00:6::2", &["db"]),
            // An IPv4 address the network cannot have, as a record could
            // say: not taken.
            on_six("bbbbbbbbbbbbbbbb", "b", Some("10.6.0.3"), "fd00:6::3", &[]),
        ];
        let c = Catalog::build(&nets, &recs);
        let six = c.networks.iter().find(|n| n.name == "six").unwrap();
        assert_eq!((six.address, six.subnet), (None, None));
        assert_eq!(six.address6, Some(ip6("fd00:6::1")));
        assert!(six.names.is_empty() && six.reverse.is_empty(), "{six:?}");
        assert_eq!(six.names6["db"], [ip6("fd00:6::2")]);
        assert_eq!(six.names6["b"], [ip6("fd00:6::3")]);
        assert_eq!(six.reverse6[&ip6("fd00:6::3")], "b");
        let mut listen = c.listen_addresses();
        listen.sort();
        let want: Vec<IpAddr> = ["10.2.0.1", "fd00:6::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(listen, want);
        assert!(listen.iter().all(|a| !a.is_unspecified()));
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let i = c.networks.iter().position(|n| n.name == "six");
        assert_eq!(c.serving(ip("fd00:6::2"), ip("fd00:6::1")), i);
        assert_eq!(c.serving(ip("fd00:6::2"), ip("10.2.0.1")), None);
        assert_eq!(c.serving(ip("fd00:6::2"), ip("0.0.0.0")), None);
        assert_eq!(c.network_index(ip("10.6.0.3")), None);
        assert_eq!(c.network_index(ip("0.0.0.0")), None);
        assert!(!c.client_servers.contains_key(&ip("10.6.0.3")));
        assert!(c.client_servers.contains_key(&ip("fd00:6::2")));
        assert!(c.serves_anyone());
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
            attachments: vec![Named1 {
                network: "web".into(),
                ip: Some(ip),
                ip6: None,
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
            }],
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
