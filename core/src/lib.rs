//! The lifecycle core, independent of any front end: a front end (the OCI
//! hook today, a CNI plugin next) builds a typed request
//! (`ocinet_common::model::Request`) and calls `setup::setup`,
//! `connect::connect`/`disconnect`, `release::teardown`, `restore` or
//! `gc`. Each network's driver (`drivers/`) makes its attachments; the
//! steps every driver shares (lease, intent record, firewall, pin,
//! rollback) live here, in a module each.
//!
//! Each of those entry points takes the state lock itself; the steps
//! inside take `&context::Locked`, which only `Context::lock` makes, so
//! none runs without it. A front end that must run several under one
//! lock (a CNI ADD, DEL or GC) takes it and calls the steps, or
//! `setup_locked`/`connect_locked`/`networks::create_locked`, with the
//! guard.
//!
//! A request's path to the kernel: `setup` (mode dispatch, the order of
//! the steps) -> `ports` (claims) -> `attach` (lease, MAC check, intent
//! record) -> `attachments` (each driver's `prepare`, the firewall
//! transaction, each driver's `wire`) -> `pin` -> `attach::conclude`.

pub mod attach;
mod attachments;
pub mod connect;
pub mod context;
pub mod drivers;
pub mod gc;
pub mod held;
pub mod host;
mod inside;
pub mod ipam;
mod killpoint;
mod mac;
pub mod naming;
pub mod networks;
mod nsid;
pub mod overlay;
mod pin;
pub mod ports;
pub mod proxy;
pub mod reaper;
pub mod release;
pub mod resolv;
pub mod restore;
pub mod setup;
