//! ocinet's port proxy (issue 22): published ports answering on the host's
//! IPv6 loopback `[::1]`. The kernel cannot DNAT IPv6 loopback traffic to
//! another address (there is no `route_localnet` for IPv6: netavark#790,
//! podman#14491), so one process per host network namespace listens on
//! `[::1]:PORT` for every such port and copies to the container, as
//! Docker's docker-proxy does, but one process for the host rather than
//! one per port, and no firewall rule at all (the rule count stays what
//! it is). Its wanted listeners come from ocinet's records (`desired`),
//! never from memory, so a proxy killed and started again (by the next
//! hook or `ocinet gc`: `control`) serves every port again. `server` is
//! the process; `wire` what its control socket answers.

pub mod cli;
pub mod control;
pub mod desired;
pub mod server;
mod splice;
pub mod wire;
