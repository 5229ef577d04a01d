//! Whether a running container's macvlan attachments still have their
//! interface. A macvlan sub-interface lives on its parent: when the parent
//! is deleted the kernel deletes every sub-interface with it, inside the
//! containers' namespaces too, and nothing tells ocinet. The record still
//! says `ready`; this is what `ps`, `gc`, the exporter and `firewall
//! reload` look at instead.

use std::collections::{HashMap, HashSet};

use crate::model::{Attachment, Endpoint, Phase};
use crate::netlink::Netlink;
use crate::{netns, validate, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    Ok,
    /// The parent interface is not on the host: the container's interface
    /// went with it.
    ParentGone,
    /// The parent is there (made again since?) but the container's
    /// macvlan interface is not: it went with the parent it had.
    InterfaceGone,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::ParentGone => "parent-gone",
            Health::InterfaceGone => "interface-gone",
        }
    }

    pub const ALL: [Health; 3] = [Health::Ok, Health::ParentGone, Health::InterfaceGone];
}

/// (container id, network) of an attachment.
pub type Key = (String, String);

/// The health of every macvlan attachment of the running containers among
/// `eps` that is not being connected or disconnected; other attachments
/// are not judged (absent from the map). A container whose namespace
/// cannot be opened is not judged either (it is gone: `gc`'s business).
///
/// Costs one dump of the host's links when there is a macvlan attachment,
/// and one link lookup in each such container's namespace whose parent is
/// there.
pub fn of_macvlans(eps: &[Endpoint]) -> Result<HashMap<Key, Health>> {
    fn judged(e: &Endpoint) -> Vec<&Attachment> {
        if e.phase != Phase::Ready {
            return Vec::new();
        }
        e.attachments
            .iter()
            .filter(|a| a.parent.is_some() && a.changing.is_none())
            .collect()
    }
    let mut out = HashMap::new();
    if eps.iter().all(|e| judged(e).is_empty()) {
        return Ok(out);
    }
    let host: HashSet<String> = Netlink::new()?
        .links()?
        .into_iter()
        .map(|l| l.name)
        .collect();
    for e in eps {
        let atts = judged(e);
        if atts.is_empty() {
            continue;
        }
        let mut inside: Option<Option<Netlink>> = None;
        for a in atts {
            let parent = a.parent.as_deref().unwrap_or_default();
            let health = if !host.contains(parent) {
                Health::ParentGone
            } else {
                let nl = inside.get_or_insert_with(|| {
                    netns::of_endpoint(e).and_then(|ns| Netlink::new_in(&ns).ok())
                });
                let Some(nl) = nl else { continue };
                match nl.link_by_name(&a.interface) {
                    Ok(Some(l))
                        if l.kind.as_deref() == Some("macvlan")
                            && a.mac.as_deref().is_none_or(|m| {
                                validate::format_mac(&l.mac).eq_ignore_ascii_case(m)
                            }) =>
                    {
                        Health::Ok
                    }
                    Ok(_) => Health::InterfaceGone,
                    Err(err) => {
                        tracing::debug!(id = %e.id, "cannot look inside: {err}");
                        continue;
                    }
                }
            };
            out.insert((e.id.clone(), a.network.clone()), health);
        }
    }
    Ok(out)
}
