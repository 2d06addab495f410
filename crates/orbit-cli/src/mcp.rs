//! `orbit mcp` (MCP over stdio) and `orbit serve --mcp` (MCP over
//! streamable HTTP on loopback).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use orbit::Orbit;

/// Arguments of `orbit serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Serve Orbit's MCP server over streamable HTTP at /mcp.
    #[arg(long)]
    mcp: bool,
    /// Address to listen on; loopback only (the server has no
    /// authentication). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8765", value_name = "ADDR")]
    listen: SocketAddr,
}

/// `orbit mcp`: MCP over stdin/stdout. Only protocol goes to stdout.
pub fn mcp_stdio(orbit: Orbit, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    let server = orbit_server::OrbitMcp::new(orbit.clone())?;
    rt.block_on(async {
        // Jobs that runs enqueue are worked while the server is up.
        let _workers = orbit.start_workers()?;
        orbit_server::serve_stdio(server).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `orbit serve --mcp`: prints `listening on http://ADDR/mcp` on stderr,
/// then serves until interrupted.
pub fn serve(orbit: Orbit, rt: &tokio::runtime::Runtime, args: ServeArgs) -> Result<ExitCode> {
    if !args.mcp {
        bail!("nothing to serve: pass --mcp");
    }
    if !args.listen.ip().is_loopback() {
        bail!("--listen {}: orbit serve has no authentication and listens on loopback addresses only", args.listen);
    }
    let server = orbit_server::OrbitMcp::new(orbit.clone())?;
    rt.block_on(async move {
        // Jobs that runs enqueue are worked while the server is up.
        let _workers = orbit.start_workers()?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        eprintln!("orbit: MCP server listening on http://{addr}/mcp");
        let config = orbit_server::HttpConfig::default();
        let stop = config.cancellation.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        });
        orbit_server::serve_http(server, listener, config).await?;
        Ok(ExitCode::SUCCESS)
    })
}
