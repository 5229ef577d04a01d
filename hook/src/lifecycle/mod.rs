//! The lifecycle core: setup from a typed request, connect and
//! disconnect, teardown, restore; and `run`, the OCI hook's entry, which
//! reads the runtime's state and the bundle and builds that request.

pub mod attach;
mod attachments;
pub mod connect;
pub mod drivers;
mod inside;
mod mac;
pub mod naming;
mod pin;
pub(crate) mod ports;
pub mod release;
pub mod restore;
mod setup;

use std::io::Read;

use ocinet_common::Result;

use crate::cli::{ContainerDefaults, Stage};
use crate::context::Context;
use crate::oci;

pub fn run(
    ctx: &Context,
    stage: Stage,
    defaults: &ContainerDefaults,
    stdin: impl Read,
) -> Result<String> {
    let state = oci::read_state(stdin)?;
    let span = tracing::info_span!("hook", id = %state.id, stage = %stage);
    let _entered = span.enter();
    let result = match stage {
        Stage::Prestart | Stage::CreateRuntime => {
            oci::request(&state, defaults).and_then(|req| setup::setup(ctx, &req))
        }
        Stage::Poststop => teardown(ctx, &state.id),
    };
    result.map(|()| state.id.clone()).map_err(|e| {
        tracing::error!("failed: {e}");
        e.context(format!("container {}", state.id))
    })
}

/// Undo a container's setup from its saved state. The container's process
/// and namespace may be gone already; a second call finds nothing to do.
pub fn teardown(ctx: &Context, id: &str) -> Result<()> {
    let _lock = ctx.lock()?;
    match ctx.state.load_endpoint(id)? {
        None => {
            tracing::info!("no endpoint recorded; nothing to tear down");
            Ok(())
        }
        Some(ep) => {
            release::release(ctx, &ep)?;
            tracing::info!(mode = %ep.mode.label(), "torn down");
            Ok(())
        }
    }
}
