//! The network-driver seam: how a container is attached to a network of
//! one kind (netavark's `NetworkDriver` + factory is the model). Teardown
//! is one shared path for every driver (`release`), driven by what the
//! record says was made, so it does not depend on the network definition
//! still being there or of the same kind.

use std::fs::File;
use std::path::Path;

use ocinet_common::model::{Driver, Endpoint, Network};
use ocinet_common::netlink::Netlink;
use ocinet_common::Result;

pub mod bridge;
pub mod macvlan;

use crate::context::Context;
use crate::settings::Settings;

pub trait NetworkDriver {
    /// Attach the container whose namespace is `ns`, recording in `ep`
    /// what is made before making it. Called with the state lock held; on
    /// failure everything done so far is undone (crun runs no poststop
    /// after a failed create).
    fn setup(
        &self,
        ctx: &Context,
        ep: Endpoint,
        settings: &Settings,
        host: &mut Netlink,
        ns: &File,
        ns_path: &Path,
    ) -> Result<()>;
}

/// The driver of `net`.
pub fn for_network(net: Network) -> Box<dyn NetworkDriver> {
    match net.driver {
        Driver::Bridge => Box::new(bridge::BridgeDriver { net }),
        Driver::Macvlan => Box::new(macvlan::MacvlanDriver { net }),
    }
}
