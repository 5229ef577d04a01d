use ocinet_common::firewall::Nft;
use ocinet_common::store::lock::StateLock;
use ocinet_common::store::networks::ConfigDir;
use ocinet_common::store::StateDir;
use ocinet_common::Result;

/// Where things live, shared by every subcommand.
pub struct Context {
    pub state: StateDir,
    pub config: ConfigDir,
}

impl Context {
    pub fn lock(&self) -> Result<StateLock> {
        StateLock::acquire(&self.state.lock_file())
    }

    pub fn firewall(&self) -> Result<Nft> {
        Nft::new()
    }
}
