//! `ocinet`: the OCI hook and its admin CLI.

use std::io::Write;
use std::process::ExitCode;

use ocinet_common::store::networks::ConfigDir;
use ocinet_common::store::StateDir;

use ocinet::cli::{Cli, Command};
use ocinet::{commands, hook, logging};
use ocinet_core::context::Context;

fn main() -> ExitCode {
    // Run by a CNI runtime (podman's CNI backend, containerd, a kubelet's
    // runtime) as the plugin `ocinet`: everything comes in the environment
    // and on stdin, nothing in the arguments.
    // (A runtime runs a plugin with no arguments; the processes ocinet
    // starts itself, the resolver and the reaper, have some, and may
    // inherit CNI_COMMAND from a plugin that started them.)
    if std::env::args_os().len() == 1 && std::env::var_os("CNI_COMMAND").is_some() {
        let code = ocinet_cni::main(&|log_file| {
            // The log is ocinet's own; the runtime reads only stdout. A
            // plugin has no arguments: its level comes from the
            // environment (the runtime passes its own on).
            let level = std::env::var("OCINET_LOG_LEVEL").unwrap_or_else(|_| "info".into());
            let _ = logging::init(log_file, &level);
        });
        // The runtime waits on the plugin's exit: not on the kernel's
        // release of its nf_tables transaction.
        ocinet_common::process::exit_leaving_to_child(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse_args(std::env::args_os());
    let what = match &cli.command {
        Command::Hook(h) => format!("hook {}", h.stage),
        Command::Network(_) => "network".into(),
        Command::Ps(_) => "ps".into(),
        Command::Inspect { .. } => "inspect".into(),
        Command::Leases(_) => "leases".into(),
        Command::Ports(_) => "ports".into(),
        Command::Gc => "gc".into(),
        Command::Dns(_) => "dns".into(),
        Command::Firewall(_) => "firewall".into(),
        Command::InstallPodmanHook(_) => "install-podman-hook".into(),
        Command::DnsServer { .. } => "dns-server".into(),
        Command::ReapLinks { .. } => "reap-links".into(),
        Command::PortProxy { .. } => "port-proxy".into(),
        Command::Proxy(_) => "proxy".into(),
        Command::Cluster(_) => "cluster".into(),
        Command::Agent { .. } => "agent".into(),
    };
    let ctx = Context {
        state: StateDir::new(&cli.globals.state_dir),
        config: ConfigDir::new(&cli.globals.config_dir),
    };
    if let Err(e) = ctx.state.ensure_root() {
        eprintln!("ocinet {what}: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = logging::init(&ctx.state.log_file(), &cli.globals.log_level) {
        eprintln!("ocinet {what}: {e}");
        return ExitCode::FAILURE;
    }
    let result = match &cli.command {
        Command::Hook(h) => {
            hook::run(&ctx, h.stage, &h.defaults, std::io::stdin().lock()).map(|_| String::new())
        }
        Command::Network(cmd) => commands::network::run(&ctx, cmd),
        Command::Ps(a) => commands::ps::run(&ctx, a.json),
        Command::Inspect { containers } => commands::inspect::run(&ctx, containers),
        Command::Leases(a) => commands::held::leases(&ctx, a.network.as_deref(), a.json),
        Command::Ports(a) => commands::held::ports(&ctx, a.json),
        Command::Gc => ocinet_core::gc::run(&ctx),
        Command::Dns(ocinet::cli::DnsCommand::Status(a)) => commands::dns::status(&ctx, a.json),
        Command::Proxy(ocinet::cli::ProxyCommand::Status(a)) => {
            commands::proxy::status(&ctx, a.json)
        }
        Command::Firewall(cmd) => commands::firewall::run(&ctx, cmd),
        Command::Cluster(cmd) => commands::cluster::run(&ctx, cmd),
        Command::Agent { persistent } => commands::cluster::agent_main(ctx, *persistent),
        Command::InstallPodmanHook(a) => commands::podman::install(&cli.globals, a),
        Command::ReapLinks { names } => ocinet_core::reaper::reap(names).map(|n| {
            tracing::debug!(deleted = n, "retired links deleted");
            String::new()
        }),
        Command::DnsServer { persistent } => {
            let _span = tracing::info_span!("resolver", pid = std::process::id()).entered();
            let lifetime = if *persistent {
                ocinet_dns::server::Lifetime::Persistent
            } else {
                ocinet_dns::server::Lifetime::OnDemand
            };
            ocinet_dns::server::run(ctx.state, ctx.config, lifetime)
                .map(|()| String::new())
                .map_err(ocinet_common::Error::Conflict)
        }
        Command::PortProxy { persistent } => {
            let _span = tracing::info_span!("proxy", pid = std::process::id()).entered();
            let lifetime = if *persistent {
                ocinet_proxy::server::Lifetime::Persistent
            } else {
                ocinet_proxy::server::Lifetime::OnDemand
            };
            ocinet_proxy::server::run(ctx.state, lifetime)
                .map(|()| String::new())
                .map_err(ocinet_common::Error::Conflict)
        }
    };
    let code = match result {
        Ok(out) => {
            let _ = std::io::stdout().write_all(out.as_bytes());
            0
        }
        Err(e) => {
            tracing::error!("{what} failed: {e}");
            eprintln!("ocinet {what}: {e}");
            1
        }
    };
    // A runtime waits on the hook's exit: not on the kernel's release of
    // its nf_tables transaction.
    ocinet_common::process::exit_leaving_to_child(code)
}
