//! `orbit mcp` (MCP over stdio) and `orbit serve --mcp` (MCP over
//! streamable HTTP on loopback). Both become the data directory's owner
//! (see [`crate::shared`]); a second `orbit mcp` becomes an adapter to the
//! owner's socket instead.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::shared::owner::{self, Owner, OwnerCtx};
use crate::shared::{self, Access, lock::DirLock, proto};

/// Arguments of `orbit mcp`.
#[derive(Args, Serialize, Deserialize)]
pub struct McpArgs {
    /// Read the token from this file (first line) instead of the
    /// `ORBIT_TOKEN` environment variable. Never pass a token on the
    /// command line: other users can read it there.
    #[arg(long, value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
    /// Relay stdio to this workspace gateway of an `orbit serve`
    /// (`http://HOST:PORT/ws/SLUG/mcp`) instead of opening a data
    /// directory: for clients that speak only stdio. The token goes in the
    /// `Authorization` header of every request.
    #[arg(long, value_name = "URL")]
    remote: Option<String>,
}

/// The session token: `--token-file`, else `ORBIT_TOKEN`.
fn session_token(args: &McpArgs) -> Result<Option<zeroize::Zeroizing<String>>> {
    if let Some(path) = &args.token_file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("--token-file {}", path.display()))?,
        );
        return Ok(Some(zeroize::Zeroizing::new(text.lines().next().unwrap_or("").trim().to_owned())));
    }
    Ok(std::env::var("ORBIT_TOKEN").ok().filter(|t| !t.is_empty()).map(zeroize::Zeroizing::new))
}

/// Arguments of `orbit serve`.
#[derive(Args, Serialize, Deserialize)]
pub struct ServeArgs {
    /// Accepted for compatibility: the MCP endpoints are always served.
    #[arg(long, hide = true)]
    mcp: bool,
    /// Address to listen on. Port 0 picks a free port. A non-loopback
    /// address needs TLS (`--tls-cert` and `--tls-key`) or
    /// `--behind-proxy`, and the host names clients use (`--public-host`):
    /// bearer tokens never cross a network in clear.
    #[arg(long, default_value = "127.0.0.1:8765", value_name = "ADDR")]
    listen: SocketAddr,
    /// PEM file of the TLS certificate chain: serve HTTPS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM file of the TLS private key.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// A TLS-terminating reverse proxy is in front: serve plain HTTP to it,
    /// and name `https` URLs (the proxy must be the only way in).
    #[arg(long, conflicts_with = "tls_cert")]
    behind_proxy: bool,
    /// A host name clients reach this server by (repeatable), accepted in
    /// `Host` and, as `https://NAME`, in `Origin`, besides the loopback
    /// names.
    #[arg(long = "public-host", value_name = "NAME")]
    public_hosts: Vec<String>,
    /// Requests per second each token may make over the API and the
    /// gateway together (bursts of twice as many); more get 429.
    #[arg(long, default_value_t = 50, value_name = "N")]
    rate_limit: u32,
    /// Export every run as an OpenTelemetry trace to this OTLP/HTTP
    /// collector (base URL, such as http://127.0.0.1:4318; `/v1/traces` is
    /// appended): the run as the root span, one child span per host call,
    /// never a payload.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

impl ServeArgs {
    /// The HTTP settings these arguments ask for.
    fn http_config(&self) -> Result<orbit_server::HttpConfig> {
        let tls = self.tls_cert.is_some();
        if !self.listen.ip().is_loopback() {
            if !tls && !self.behind_proxy {
                bail!(
                    "--listen {}: a non-loopback address needs TLS (--tls-cert FILE --tls-key FILE) or \
                     --behind-proxy; otherwise orbit serve listens on loopback addresses only",
                    self.listen
                );
            }
            if self.public_hosts.is_empty() {
                bail!("--listen {}: name the host names clients use with --public-host NAME", self.listen);
            }
        }
        let mut config = orbit_server::HttpConfig::default();
        let Some(rate) = std::num::NonZeroU32::new(self.rate_limit) else { bail!("--rate-limit must be at least 1") };
        let burst = rate.saturating_mul(std::num::NonZeroU32::MIN.saturating_add(1));
        config.rate_limit = orbit_server::api::RateLimit::new(rate, burst);
        for name in &self.public_hosts {
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() || name.contains(['/', ' ', '*']) {
                bail!("--public-host {name:?}: give a host name, such as orbit.example.com");
            }
            config.allowed_hosts.push(name.clone());
            config.allowed_origins.push(format!("https://{name}"));
            config.allowed_origins.push(format!("https://{name}:*"));
        }
        if tls || self.behind_proxy {
            config.scheme = "https";
        }
        Ok(config)
    }
}

/// `orbit mcp`: MCP over stdin/stdout. Only protocol goes to stdout.
///
/// As the owner, it serves its stdio and the socket; once its own client
/// has gone it keeps serving until the last connection through the socket
/// (another agent's session, a CLI command) has ended.
pub fn mcp(dir: &Path, args: McpArgs) -> Result<ExitCode> {
    let Some(token) = session_token(&args)? else {
        bail!(
            "orbit mcp needs a token: set ORBIT_TOKEN (or pass --token-file FILE); issue one with \
             `orbit token issue --workspace SLUG --user USER --agent NAME`"
        );
    };
    if let Some(url) = &args.remote {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        rt.block_on(orbit_server::remote::relay(url, token.as_str(), tokio::io::stdin(), tokio::io::stdout()))
            .map_err(|e| anyhow::anyhow!("orbit mcp --remote: {e}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let hello = zeroize::Zeroizing::new(serde_json::to_vec(&proto::Hello::Mcp { token: Some(token.to_string()) })?);
    match shared::connect(dir, Some(&hello[..]))? {
        // The owner checks the token on every message of the session.
        Access::Owner { stream, .. } => shared::client::mcp_adapter(stream),
        Access::Locked(lock) => own(dir, lock, move |server, orbit| async move {
            // Refuse at once, before serving, a token that cannot work; the
            // session still checks it on every message (revocation).
            if let Err(e) = orbit_server::auth::authenticate(&orbit, Some(token.as_str())) {
                bail!("orbit mcp: {}", e.message);
            }
            let session = server.session().with_credentials(orbit_server::auth::Credentials::token(token.as_str()));
            orbit_server::serve_stdio(session).await?;
            anyhow::Ok(ExitCode::SUCCESS)
        }),
    }
}

/// `orbit serve`: prints the address on stderr, then serves the REST API
/// and the MCP gateway until interrupted (then waits for requests in
/// flight: runs finish or reach their deadline and are recorded).
/// How often `orbit serve` prunes runs past the retention.
const RUN_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

pub fn serve(dir: &Path, args: ServeArgs) -> Result<ExitCode> {
    let config = args.http_config()?;
    let lock = match shared::connect(dir, None)? {
        Access::Owner { pid, .. } => {
            let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            bail!(
                "another orbit process{who} already serves {}: stop it first, or use it (CLI commands and \
                 `orbit mcp` go through it)",
                dir.display()
            );
        }
        Access::Locked(lock) => lock,
    };
    own(dir, lock, |server, orbit| async move {
        if let Some(endpoint) = &args.otlp_endpoint {
            orbit.export_traces(endpoint).with_context(|| "--otlp-endpoint")?;
        }
        let listener =
            std::net::TcpListener::bind(args.listen).with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        eprintln!(
            "orbit: listening on {}://{addr} (REST API at /api/v1, OpenAPI at /api/v1/openapi.json, MCP gateway \
             at /ws/<workspace>/mcp; every request needs Authorization: Bearer <token>)",
            if args.tls_cert.is_some() { "https" } else { "http" }
        );
        let stop = config.cancellation.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        });
        // Runs past the retention go hourly (and went when the directory
        // opened).
        let (pruning, stop) = (orbit.clone(), config.cancellation.clone());
        tokio::spawn(async move {
            let mut hourly =
                tokio::time::interval_at(tokio::time::Instant::now() + RUN_PRUNE_INTERVAL, RUN_PRUNE_INTERVAL);
            loop {
                tokio::select! {
                    _ = hourly.tick() => {}
                    () = stop.cancelled() => return,
                }
                let orbit = pruning.clone();
                match tokio::task::spawn_blocking(move || orbit.prune_runs(None)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => eprintln!("orbit: pruning runs: {e}"),
                    Err(e) => eprintln!("orbit: pruning runs: {e}"),
                }
            }
        });
        match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => orbit_server::serve_https(server, listener, cert, key, config).await?,
            _ => {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                orbit_server::serve_http(server, listener, config).await?
            }
        }
        // The runs of the last second are still queued for the collector.
        if let Err(e) = tokio::task::spawn_blocking(move || orbit.flush_traces()).await? {
            eprintln!("orbit: {e}");
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Runs `main` as the data directory's owner: opens it (this process holds
/// `lock`), starts the queue workers and serves the socket while `main`
/// runs, then waits for the socket's last connection, stops, closes every
/// file and releases the lock.
fn own<F, Fut>(dir: &Path, lock: DirLock, main: F) -> Result<ExitCode>
where
    F: FnOnce(orbit_server::OrbitMcp, orbit::Orbit) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode>>,
{
    let orbit = crate::open_orbit(dir, &mut std::io::stderr(), orbit::OrbitConfig::default)?;
    // A long-lived owner checks every store at startup.
    orbit.open_stores()?;
    let server = orbit_server::OrbitMcp::new(orbit.clone())?;
    let listener = owner::bind(dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(async {
        // Jobs that runs enqueue are worked while the owner is up.
        let workers = Arc::new(orbit.start_workers()?);
        let ctx = OwnerCtx { orbit: orbit.clone(), mcp: server.clone(), workers };
        let owner = Owner::start(dir, listener, ctx)?;
        let result = main(server, orbit.clone()).await;
        owner.wait_idle().await;
        owner.shutdown().await;
        result
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    drop(orbit);
    drop(lock);
    result
}
