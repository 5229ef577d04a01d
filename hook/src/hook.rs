//! The OCI hook front end: reads the runtime's state and the bundle,
//! builds the core's typed request, and calls the core (setup at
//! prestart/createRuntime, teardown at poststop).

use std::io::Read;

use ocinet_common::Result;

use ocinet_core::context::Context;
use ocinet_core::{release, setup};

use crate::cli::{ContainerDefaults, Stage};
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
        Stage::Poststop => release::teardown(ctx, &state.id),
    };
    result.map(|()| state.id.clone()).map_err(|e| {
        tracing::error!("failed: {e}");
        e.context(format!("container {}", state.id))
    })
}
