//! `orbit`: run WebAssembly components under limits and inspect their runs.

mod ai;
mod jobs;
mod shared;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use orbit::{Invocation, Limits, Orbit, Principal, RunId, RunQuery, RunRecord, RunStatus, UserId, WorkspaceId};
use serde::{Deserialize, Serialize};

mod mcp;
mod team;
mod tools;

/// Orbit: a sandboxed code-execution engine for AI agents.
#[derive(Parser)]
#[command(name = "orbit", version, about)]
struct Cli {
    /// Data directory (runs, compiled components, storage, cache).
    /// Defaults to $ORBIT_HOME, then the platform data directory.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Serialize, Deserialize)]
enum Command {
    /// Run a component once and record the run. A Python, JavaScript or
    /// TypeScript source file (`agent.py`, `agent.js`, `agent.ts`) is built
    /// into a component first (cached by content).
    Run(RunArgs),
    /// List and inspect recorded runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Precompile a component into the compile cache (a `.py`, `.js` or
    /// `.ts` source is built first).
    Compile {
        /// Path to the component (.wasm), or an agent's source (.py, .js,
        /// .mjs, .ts, .mts).
        component: PathBuf,
    },
    /// Install the toolchain that builds guests of a language from source.
    #[command(subcommand)]
    Sdk(SdkCommand),
    /// Store, list and remove a workspace's secrets. Values are never shown.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Manage the vault's keys.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Configure the model providers of the `ai` primitive.
    #[command(subcommand)]
    Ai(ai::AiCommand),
    /// Register, list and remove stored jobs; show and work the queue.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Speak MCP over stdin/stdout: agents (Claude Code, Cursor, Codex)
    /// dock here to run components and read runs. Needs a token
    /// (`ORBIT_TOKEN`, or `--token-file`): it decides the workspace and role.
    Mcp(mcp::McpArgs),
    /// Serve Orbit over HTTP: `--mcp` exposes the MCP server at /mcp.
    Serve(mcp::ServeArgs),
    /// Install and manage a workspace's MCP servers and tool policy.
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// Create, list, show and delete workspaces.
    #[command(subcommand)]
    Workspace(team::WorkspaceCommand),
    /// Add, list, re-role and remove a workspace's members.
    #[command(subcommand)]
    Member(team::MemberCommand),
    /// Issue, list and revoke tokens.
    #[command(subcommand)]
    Token(team::TokenCommand),
    /// Read a workspace's audit trail (tool calls, administrative actions,
    /// credential uses), newest first.
    Audit(team::AuditArgs),
    /// Read a workspace's notifications (members removed, items orphaned).
    Notifications(team::WsArg),
}

#[derive(Subcommand, Serialize, Deserialize)]
enum SdkCommand {
    /// Install a language's build toolchain under `<data dir>/sdk`
    /// (python: a virtualenv with componentize-py from PyPI; js: jco and
    /// componentize-js from npm, on Node.js 20.19 or later).
    Install {
        /// `python` or `js` (also `typescript`).
        language: String,
    },
}

#[derive(Subcommand, Serialize, Deserialize)]
enum SecretCommand {
    /// Store a secret. The value is read from stdin (without echo on a
    /// terminal) and never shown again.
    Set(SecretSetArgs),
    /// List a workspace's secrets (metadata only).
    List {
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret.
    Rm {
        /// Secret name.
        name: String,
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Reassign an orphaned secret to an active member; with `--new-value`
    /// the new value is read from stdin (without echo on a terminal).
    Reassign {
        /// Secret name.
        name: String,
        /// The member who owns it from now on.
        #[arg(long)]
        to: String,
        /// Read a new value from stdin.
        #[arg(long)]
        new_value: bool,
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

#[derive(Args, Serialize, Deserialize)]
struct SecretSetArgs {
    /// Secret name: 1 to 128 of A-Z a-z 0-9 _ . -
    name: String,
    /// Workspace.
    #[arg(long, default_value = "default")]
    workspace: String,
    /// Origin the secret may be sent to, e.g. https://api.example.com or
    /// http://127.0.0.1:8080; repeat for several. A path narrows it to that
    /// path prefix.
    #[arg(long = "host", required = true)]
    hosts: Vec<String>,
    /// Only these methods (repeatable); default any.
    #[arg(long = "method")]
    methods: Vec<String>,
    /// Put the value in this header ...
    #[arg(long, group = "placement", requires = "template")]
    header: Option<String>,
    /// ... as this template, with {} replaced by the value.
    #[arg(long)]
    template: Option<String>,
    /// Put the value in this query parameter.
    #[arg(long, group = "placement")]
    query: Option<String>,
    /// Send the value as the password of HTTP Basic auth for this user.
    #[arg(long, group = "placement")]
    basic_user: Option<String>,
    /// The member who owns it (only they may change it); default the
    /// workspace's owner.
    #[arg(long)]
    owner: Option<String>,
}

#[derive(Subcommand, Serialize, Deserialize)]
enum VaultCommand {
    /// Rotate the key-encryption key: a new key version; every workspace
    /// data key is re-wrapped under it. Old versions stay readable until
    /// retired.
    Rotate,
    /// Retire an old key-encryption key version no data key uses any more.
    Retire {
        /// The version to retire.
        version: u32,
    },
    /// Show key versions and encryption counts.
    Status,
}

#[derive(Args, Serialize, Deserialize)]
struct RunArgs {
    /// Path to the component (.wasm): an orbit agent or a wasi:cli command;
    /// or an agent's source, built first: Python (.py) with componentize-py,
    /// JavaScript or TypeScript (.js, .mjs, .ts, .mts) with jco.
    component: PathBuf,
    /// Input text: the agent's `run` argument or the command's stdin.
    /// Without `--input` or `--input-file`, this process's stdin when it is
    /// not a terminal (`orbit run cmd.wasm < data.txt`, `… | orbit run
    /// cmd.wasm`), up to 64 MiB of UTF-8 text.
    #[arg(long, conflicts_with = "input_file")]
    input: Option<String>,
    /// Read the input from a file.
    #[arg(long, value_name = "PATH")]
    input_file: Option<PathBuf>,
    /// Workspace the run belongs to.
    #[arg(long, default_value = "default")]
    workspace: String,
    /// Fuel budget, in wasmtime fuel units.
    #[arg(long)]
    fuel: Option<u64>,
    /// Wall-clock deadline, in milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Linear memory limit, in MiB.
    #[arg(long)]
    memory_mib: Option<usize>,
    /// Do not keep a copy of the output and logs on the run record (sizes,
    /// status and spans are still recorded).
    #[arg(long)]
    no_record_output: bool,
    /// Print the run as JSON on stdout instead of the raw output.
    #[arg(long)]
    json: bool,
    /// A command's arguments, after `--` (`orbit run cmd.wasm -- -n 3
    /// file`): its `argv[1..]`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

/// The most stdin `orbit run` reads as a run's input, in bytes.
const MAX_STDIN_INPUT_BYTES: u64 = 64 << 20;

/// This process's stdin, whole, as a run's input: up to
/// [`MAX_STDIN_INPUT_BYTES`] of UTF-8.
fn read_stdin_input() -> Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin().take(MAX_STDIN_INPUT_BYTES + 1).read_to_end(&mut bytes).context("reading stdin")?;
    if bytes.len() as u64 > MAX_STDIN_INPUT_BYTES {
        bail!("stdin is over {MAX_STDIN_INPUT_BYTES} bytes: pass a smaller input (or --input-file)");
    }
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("stdin is not UTF-8 text: runs take text input"))
}

#[derive(Subcommand, Serialize, Deserialize)]
enum RunsCommand {
    /// List runs of a workspace, newest first.
    List {
        /// Workspace to list.
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Only runs with this status (succeeded, failed, exited,
        /// out-of-fuel, deadline-exceeded, memory-limit, stack-overflow,
        /// too-large, trapped, internal, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only runs acted for this member (user handle), through any of
        /// its tokens or agents.
        #[arg(long, value_name = "USER")]
        member: Option<String>,
        /// Most runs to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Show runs older than this run id (from a previous page).
        #[arg(long)]
        before: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run with its spans and logs.
    Show {
        /// The run id.
        run_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove runs past the retention (by default older than 30 days, and
    /// beyond the newest 100,000 per workspace). Also done when the data
    /// directory opens, and hourly by `orbit serve`.
    Prune {
        /// Only this workspace (default: every workspace).
        #[arg(long)]
        workspace: Option<String>,
        /// Remove runs older than this (`30d`, `12h`, `90m`) instead of the
        /// retention's age.
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Keep only the newest N runs of each workspace instead of the
        /// retention's count.
        #[arg(long, value_name = "N")]
        keep: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give the space of removed runs back to the file system (redb
    /// compaction). Needs the data directory to itself: stop `orbit serve`
    /// and `orbit mcp` first.
    Compact,
}

fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(d);
    }
    if let Some(d) = std::env::var_os("ORBIT_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::data_dir().map(|d| d.join("orbit")).context("no platform data directory; pass --data-dir or set ORBIT_HOME")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    let dir = data_dir(cli.data_dir)?;
    // Paths are resolved against this process's working directory before
    // the command may travel to the data directory's owner.
    let dir = std::path::absolute(&dir).with_context(|| format!("data directory {}", dir.display()))?;
    match cli.command {
        Command::Mcp(args) => mcp::mcp(&dir, args),
        Command::Serve(args) => mcp::serve(&dir, args),
        Command::Sdk(SdkCommand::Install { language }) => sdk_install(&dir, &language),
        Command::Runs(RunsCommand::Compact) => runs_compact(&dir),
        mut command => {
            // Sources are built here, on the user's side, with their
            // toolchain and their progress, before the command may travel
            // to the data directory's owner as a plain component.
            command.build_sources(&dir)?;
            let stdin = command.read_stdin()?;
            shared::run_command(&dir, command, stdin)
        }
    }
}

/// `orbit runs compact`: opens the run store alone (never through the
/// data directory's owner, which holds it open) and compacts it.
fn runs_compact(dir: &Path) -> Result<ExitCode> {
    let path = dir.join("runs.redb");
    let before = std::fs::metadata(&path).with_context(|| format!("no run store at {}", path.display()))?.len();
    let store = orbit::orbit_runs::RunStore::open(&path).map_err(|e| match e {
        orbit::orbit_runs::RunStoreError::Open { .. } => anyhow::anyhow!(
            "the run store is open in another process: stop `orbit serve` and `orbit mcp` on {} first",
            dir.display()
        ),
        other => anyhow::Error::new(other),
    })?;
    store.compact()?;
    let after = std::fs::metadata(&path)?.len();
    eprintln!("orbit: compacted {}: {before} -> {after} bytes", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `orbit sdk install LANGUAGE`.
fn sdk_install(dir: &Path, language: &str) -> Result<ExitCode> {
    let Some(language) = orbit_sdk::Language::named(language) else {
        bail!(
            "unknown language {language:?}: Orbit builds python (.py) and js (.js, .mjs, .ts, .mts) guests from source"
        );
    };
    let builder = orbit_sdk::Builder::new(dir.join("builds"), dir.join("sdk"));
    let progress = TerminalProgress::default();
    progress.start(&format!("installing {}", language.toolchain()));
    let installed = builder.install(language);
    progress.finish();
    let tool = installed?;
    eprintln!("orbit: installed {} ({} toolchain)", tool.display(), language.name());
    Ok(ExitCode::SUCCESS)
}

/// Opens the data directory (this process holds its lock) with the settings
/// `config` makes, and says so when a new master key was generated.
fn open_orbit(dir: &Path, err: &mut dyn Write, config: fn() -> orbit::OrbitConfig) -> Result<Orbit> {
    let orbit =
        shared::open_retrying(dir, config).with_context(|| format!("opening data directory {}", dir.display()))?;
    if let Some(orbit::MasterKeySource::Generated(path)) = orbit.master_key_source() {
        writeln!(
            err,
            "orbit: generated a new master key at {} (mode 0600). Back it up: secrets cannot be read without it. \
             Set ORBIT_MASTER_KEY to supply your own.",
            path.display()
        )?;
    }
    Ok(orbit)
}

/// What a command handler gets besides its arguments and its writers. The
/// same handlers run in a short-lived `orbit` that holds the data
/// directory's lock, and in the owner (`orbit serve`, `orbit mcp`) for a
/// command another `orbit` sent through the socket.
pub(crate) struct Ctx<'a> {
    /// The open data directory.
    pub(crate) orbit: &'a Orbit,
    /// The tokio runtime handlers block on (never called from inside it).
    pub(crate) rt: &'a tokio::runtime::Handle,
    /// The owner's queue workers, already running; `None` in a short-lived
    /// process, where a handler starts them itself when it needs them.
    pub(crate) workers: Option<&'a orbit::JobWorkers>,
    /// What the command read from the user's stdin, on the user's side
    /// ([`Command::read_stdin`]): the value of `orbit secret set`. Secret:
    /// never printed, never logged; taken (moved, not copied) by the handler.
    pub(crate) stdin: std::cell::Cell<Option<String>>,
    /// Shows a spinner on the user's terminal (a no-op when it is none).
    pub(crate) progress: &'a dyn Progress,
}

/// A spinner on the user's terminal, while a component compiles.
pub(crate) trait Progress: Send + Sync {
    /// Shows `message` with a spinner until [`Progress::finish`].
    fn start(&self, message: &str);
    /// Clears the spinner.
    fn finish(&self);
}

/// The spinner of a command running in this process: indicatif on stderr,
/// shown only when stderr is a terminal.
#[derive(Default)]
pub(crate) struct TerminalProgress(std::sync::Mutex<Option<indicatif::ProgressBar>>);

impl Progress for TerminalProgress {
    fn start(&self, message: &str) {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return;
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn finish(&self) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

impl Command {
    /// Makes every path argument absolute against `cwd`, the working
    /// directory of the `orbit` the user started, before the command goes
    /// to the data directory's owner, whose working directory is another.
    /// A new command with path arguments must resolve them here.
    pub(crate) fn absolutize(&mut self, cwd: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        match self {
            Command::Run(args) => {
                abs(&mut args.component);
                if let Some(p) = &mut args.input_file {
                    abs(p);
                }
            }
            Command::Compile { component } => abs(component),
            Command::Jobs(jobs::JobsCommand::Add { component, .. }) => abs(component),
            Command::Runs(_)
            | Command::Sdk(_)
            | Command::Secret(_)
            | Command::Vault(_)
            | Command::Ai(_)
            | Command::Jobs(_)
            | Command::Mcp(_)
            | Command::Serve(_)
            | Command::Tools(_)
            | Command::Workspace(_)
            | Command::Member(_)
            | Command::Token(_)
            | Command::Audit(_)
            | Command::Notifications(_) => {}
        }
    }

    /// Builds a source file given as the component (`orbit run agent.py`,
    /// `orbit compile agent.py`, `orbit jobs add NAME agent.py`) and puts the
    /// built component's path in its place.
    fn build_sources(&mut self, dir: &Path) -> Result<()> {
        let component = match self {
            Command::Run(args) => &mut args.component,
            Command::Compile { component } | Command::Jobs(jobs::JobsCommand::Add { component, .. }) => component,
            _ => return Ok(()),
        };
        if orbit_sdk::Language::of(component).is_none() {
            return Ok(());
        }
        let builder = orbit_sdk::Builder::new(dir.join("builds"), dir.join("sdk"));
        let progress = TerminalProgress::default();
        let started = std::time::Instant::now();
        let built = builder.build(component, |message| progress.start(message));
        progress.finish();
        let built = built?;
        if !built.cached {
            eprintln!(
                "orbit: built {} in {:.1} s (kept for the next runs of the same sources)",
                component.display(),
                started.elapsed().as_secs_f64()
            );
        }
        *component = built.wasm;
        Ok(())
    }

    /// Reads what the command needs from the user's stdin, in the process
    /// the user started (the command itself may run in the owner): the
    /// value of `orbit secret set`, without echo on a terminal.
    fn read_stdin(&self) -> Result<Option<String>> {
        match self {
            Command::Secret(SecretCommand::Set(a)) => Ok(Some(read_secret_value(&a.name)?)),
            Command::Secret(SecretCommand::Reassign { name, new_value: true, .. }) => {
                Ok(Some(read_secret_value(name)?))
            }
            // Like `wasmtime run`: piped or redirected stdin is the input.
            Command::Run(a)
                if a.input.is_none()
                    && a.input_file.is_none()
                    && !std::io::IsTerminal::is_terminal(&std::io::stdin()) =>
            {
                Ok(Some(read_stdin_input()?))
            }
            _ => Ok(None),
        }
    }
}

/// Runs one command with its output on `out` and `err`. Add a command with
/// one arm here (and, for path arguments, one in [`Command::absolutize`]).
pub(crate) fn dispatch(command: Command, ctx: &Ctx, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    let orbit = ctx.orbit;
    // One place for "an unknown workspace is not-found": every command that
    // names one with `--workspace` (a `workspace` field of its arguments).
    if let Some(name) = named_workspace(&serde_json::to_value(&command)?) {
        orbit.require_workspace(&parse_workspace(&name)?)?;
    }
    match command {
        Command::Run(args) => ctx.rt.block_on(run(args, ctx, out, err)),
        Command::Compile { component } => {
            let wasm = read_component(&component)?;
            // What `compile` promises is Cranelift's artifact in the cache,
            // so no baseline code first.
            let loaded = if ctx.orbit.engine().is_cached(&wasm) {
                ctx.orbit.engine().load_optimized(&wasm)?
            } else {
                ctx.progress.start(&format!("compiling {} KiB component", wasm.len() / 1024));
                let loaded = ctx.orbit.engine().load_optimized(&wasm);
                ctx.progress.finish();
                loaded?
            };
            writeln!(err, "compiled {} ({}, {})", component.display(), loaded.kind(), loaded.digest())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Secret(cmd) => secret(cmd, ctx, out, err),
        Command::Vault(cmd) => vault(cmd, orbit, out, err),
        Command::Ai(cmd) => ai::ai(cmd, orbit, out, err),
        Command::Jobs(cmd) => jobs::jobs(cmd, ctx, out, err),
        Command::Tools(cmd) => ctx.rt.block_on(tools::tools(cmd, orbit, out, err)),
        Command::Runs(cmd) => runs(cmd, orbit, out),
        Command::Workspace(cmd) => team::workspace(orbit, cmd, out, err),
        Command::Member(cmd) => team::member(orbit, cmd, out, err),
        Command::Token(cmd) => team::token(orbit, cmd, out, err),
        Command::Audit(args) => team::audit(orbit, args, out),
        Command::Notifications(args) => team::notifications(orbit, args, out),
        Command::Mcp(_) | Command::Serve(_) | Command::Sdk(_) => {
            bail!("`orbit mcp`, `orbit serve` and `orbit sdk` run only in their own process")
        }
    }
}

/// The value of the first `workspace` field in a command's arguments.
fn named_workspace(args: &serde_json::Value) -> Option<String> {
    match args {
        serde_json::Value::Object(map) => match map.get("workspace") {
            Some(serde_json::Value::String(name)) => Some(name.clone()),
            _ => map.values().find_map(named_workspace),
        },
        _ => None,
    }
}

fn runs(cmd: RunsCommand, orbit: &Orbit, out: &mut dyn Write) -> Result<ExitCode> {
    match cmd {
        RunsCommand::List { workspace, status, member, limit, before, json } => {
            let status =
                status.map(|s| s.parse::<RunStatus>().map_err(|e| anyhow::anyhow!("--status: {e}"))).transpose()?;
            let before =
                before.map(|b| b.parse::<RunId>().map_err(|e| anyhow::anyhow!("--before: {e}"))).transpose()?;
            let member = member
                .map(|m| m.parse::<orbit::orbit_workspace::UserId>().map_err(|e| anyhow::anyhow!("--member: {e}")))
                .transpose()?;
            let query = RunQuery { workspace: parse_workspace(&workspace)?, status, limit, before, member };
            let page = orbit.runs().list(&query)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&page)?)?;
            } else {
                print_run_table(out, &page.runs)?;
                if let Some(next) = page.next_cursor {
                    let member = query.member.map(|m| format!(" --member {m}")).unwrap_or_default();
                    writeln!(out, "more: orbit runs list --workspace {workspace}{member} --before {next}")?;
                }
            }
        }
        RunsCommand::Show { run_id, json } => {
            let id: RunId = run_id.parse().map_err(|e| anyhow::anyhow!("run id: {e}"))?;
            let Some(rec) = orbit.runs().get(id)? else { bail!("no run {run_id}") };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rec)?)?;
            } else {
                print_run(out, &rec)?;
            }
        }
        RunsCommand::Prune { workspace, older_than, keep, json } => {
            let only = workspace.as_deref().map(parse_workspace).transpose()?;
            let age = older_than
                .as_deref()
                .map(orbit::orbit_workspace::parse_duration_ms)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--older-than: {e}"))?;
            // The flags replace those bounds of the deployment's retention,
            // for every workspace it names.
            let mut policy = orbit.run_retention().clone();
            for rule in std::iter::once(&mut policy.default).chain(policy.workspaces.values_mut()) {
                if let Some(age) = age {
                    rule.max_age_ms = Some(age);
                }
                if let Some(keep) = keep {
                    rule.max_runs = Some(keep);
                }
            }
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
            let report = orbit.runs().prune(&policy, only.as_ref(), now)?;
            if json {
                let v = serde_json::json!({"removed": report.removed, "kept": report.kept, "workspaces": report.workspaces});
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "removed {} runs, kept {} in {} workspace(s)",
                    report.removed, report.kept, report.workspaces
                )?;
            }
        }
        RunsCommand::Compact => bail!("`orbit runs compact` runs on its own, never through the data directory's owner"),
    }
    Ok(ExitCode::SUCCESS)
}

fn secret(cmd: SecretCommand, ctx: &Ctx, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    let orbit = ctx.orbit;
    match cmd {
        SecretCommand::Set(a) => {
            let placement = match (&a.header, &a.template, &a.query, &a.basic_user) {
                (Some(name), Some(template), None, None) => {
                    orbit::Placement::Header { name: name.clone(), template: template.clone() }
                }
                (None, None, Some(param), None) => orbit::Placement::Query { param: param.clone() },
                (None, None, None, Some(user)) => orbit::Placement::Basic { username: user.clone() },
                _ => bail!("give one of --header NAME --template T, --query PARAM, or --basic-user USER"),
            };
            let mut hosts = Vec::new();
            for h in &a.hosts {
                let binding = orbit::HostBinding::parse(h).with_context(|| format!("--host {h}"))?;
                hosts.push(if a.methods.is_empty() { binding } else { binding.with_methods(&a.methods) });
            }
            let Some(text) = ctx.stdin.take() else { bail!("no secret value was read") };
            let value = orbit::SecretValue::new(text);
            let ws = parse_workspace(&a.workspace)?;
            let owner = a.owner.as_deref().map(parse_user).transpose()?;
            let secret = orbit::NewSecret { name: a.name.clone(), value, hosts, placement, owner };
            let meta = orbit.set_credential(&Principal::local_operator(), &ws, secret)?;
            let owner = meta.owner.as_ref().map(|o| o.as_str()).unwrap_or("-");
            writeln!(
                err,
                "stored secret {} in workspace {ws} ({} host binding(s), owner {owner})",
                meta.name,
                meta.hosts.len()
            )?;
        }
        SecretCommand::List { workspace, json } => {
            let list = orbit.credentials(&Principal::local_operator(), &parse_workspace(&workspace)?)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                writeln!(
                    out,
                    "{:<24}  {:<40}  {:<28}  {:<16}  {:<24}  LAST USED",
                    "NAME", "HOSTS", "PLACEMENT", "OWNER", "CREATED"
                )?;
                for orbit::CredentialListing { meta: m, orphaned } in list {
                    let owner = match (&m.owner, orphaned) {
                        (Some(o), false) => o.to_string(),
                        (Some(o), true) => format!("{o} (orphaned)"),
                        (None, _) => "- (orphaned)".to_owned(),
                    };
                    let hosts: Vec<String> = m
                        .hosts
                        .iter()
                        .map(|h| {
                            format!("{}://{}:{}{}", h.scheme, h.host, h.port, h.path_prefix.as_deref().unwrap_or(""))
                        })
                        .collect();
                    let placement = match &m.placement {
                        orbit::Placement::Header { name, template } => format!("header {name}: {template}"),
                        orbit::Placement::Query { param } => format!("query {param}"),
                        orbit::Placement::Basic { username } => format!("basic {username}"),
                        other => format!("{other:?}"),
                    };
                    writeln!(
                        out,
                        "{:<24}  {:<40}  {:<28}  {:<16}  {:<24}  {}",
                        m.name,
                        hosts.join(","),
                        placement,
                        owner,
                        fmt_time(m.created_at_ms),
                        m.last_used_at_ms.map(fmt_time).unwrap_or_else(|| "never".into())
                    )?;
                }
            }
        }
        SecretCommand::Rm { name, workspace } => {
            orbit.delete_credential(&Principal::local_operator(), &parse_workspace(&workspace)?, &name)?;
            writeln!(err, "removed secret {name}")?;
        }
        SecretCommand::Reassign { name, to, new_value, workspace } => {
            let value = if new_value {
                let Some(text) = ctx.stdin.take() else { bail!("no secret value was read") };
                Some(orbit::SecretValue::new(text))
            } else {
                None
            };
            let ws = parse_workspace(&workspace)?;
            orbit.reassign_credential(&Principal::local_operator(), &ws, &name, &parse_user(&to)?, value)?;
            writeln!(err, "secret {name} now belongs to {to}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a secret value: from the terminal without echo, or from piped stdin
/// (one line, trailing newline removed).
fn read_secret_value(name: &str) -> Result<String> {
    use std::io::IsTerminal;
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("value for {name}: "))?
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.truncate(line.trim_end_matches(['\r', '\n']).len());
        line
    };
    if text.is_empty() {
        bail!("empty secret value");
    }
    Ok(text)
}

fn vault(cmd: VaultCommand, orbit: &Orbit, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    match cmd {
        VaultCommand::Rotate => {
            let r = orbit.vault().rotate()?;
            writeln!(
                err,
                "rotated key-encryption key {} -> {}; re-wrapped {} data key(s). Retire the old version with `orbit vault retire {}`.",
                r.previous_kek_id, r.kek_id, r.rewrapped, r.previous_version
            )?;
        }
        VaultCommand::Retire { version } => {
            orbit.vault().retire(version)?;
            writeln!(err, "retired key version {version}")?;
        }
        VaultCommand::Status => {
            let st = orbit.vault().status()?;
            writeln!(out, "current key   {} (version {})", st.kek_id, st.kek_version)?;
            writeln!(out, "limit         {} encryptions per key (NIST SP 800-38D)", st.encryption_limit)?;
            writeln!(out, "secrets       {}", st.secrets)?;
            for k in &st.keks {
                let state = if k.current {
                    "current"
                } else if k.retired_at_ms.is_some() {
                    "retired"
                } else {
                    "readable"
                };
                writeln!(out, "kek {:<10} wraps {:<8} data keys {:<4} {state}", k.id, k.wraps, k.data_keys)?;
            }
            for d in &st.data_keys {
                writeln!(
                    out,
                    "dek {:<24} workspace {:<16} under {:<10} encryptions {:<8}{}",
                    d.id,
                    d.workspace,
                    d.kek_id,
                    d.encryptions,
                    if d.current { " current" } else { "" }
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn parse_user(name: &str) -> Result<UserId> {
    UserId::new(name).with_context(|| format!("user {name:?}"))
}

fn parse_workspace(name: &str) -> Result<WorkspaceId> {
    WorkspaceId::new(name).with_context(|| format!("workspace {name:?}"))
}

fn read_component(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading component {}", path.display()))
}

/// Loads a component, with a spinner when it must be compiled.
fn load_with_progress(ctx: &Ctx, wasm: &[u8]) -> Result<orbit::LoadedComponent> {
    if let Some(loaded) = ctx.orbit.engine().load_if_cached(wasm)? {
        return Ok(loaded);
    }
    ctx.progress.start(&format!("compiling {} KiB component", wasm.len() / 1024));
    let loaded = ctx.orbit.engine().load(wasm);
    ctx.progress.finish();
    Ok(loaded?)
}

async fn run(args: RunArgs, ctx: &Ctx<'_>, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    let orbit = ctx.orbit;
    let input = match (&args.input, &args.input_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("reading input file {}", path.display()))?
        }
        (None, None) => ctx.stdin.take().unwrap_or_default(),
    };
    let mut limits: Limits = orbit.engine().config().default_limits.clone();
    if let Some(f) = args.fuel {
        limits.fuel = f;
    }
    if let Some(ms) = args.timeout_ms {
        limits.timeout = Duration::from_millis(ms);
    }
    if let Some(mib) = args.memory_mib {
        limits.memory_bytes = mib.saturating_mul(1 << 20);
    }
    if args.no_record_output {
        limits.record_output = false;
    }
    let wasm = read_component(&args.component)?;
    if wasm.len() > limits.component_bytes {
        bail!("component is {} bytes, over the {}-byte limit", wasm.len(), limits.component_bytes);
    }
    let component = load_with_progress(ctx, &wasm)?;
    // Queued jobs run while this run does, when it can wait for them (it
    // imports `jobs`); an owner process runs them already. A run that
    // cannot leaves the job store closed.
    let _workers = match ctx.workers {
        None if component.imports("orbit:runtime/jobs") => Some(orbit.start_workers()?),
        _ => None,
    };
    let ws = parse_workspace(&args.workspace)?;
    let invocation = Invocation::new(input)
        .args(args.args.iter().cloned())
        .workspace(ws)
        .principal(Principal::local_operator())
        .limits(limits);
    let outcome = orbit.engine().invoke(&component, invocation).await?;
    let rec = &outcome.record;
    if args.json {
        let mut v = serde_json::to_value(rec)?;
        v["output"] = serde_json::Value::String(outcome.output_text());
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        out.write_all(&outcome.output)?;
        if !outcome.output.is_empty() && !outcome.output.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    writeln!(err, "{}", summary(rec))?;
    Ok(if rec.status.is_success() {
        ExitCode::SUCCESS
    } else {
        match rec.exit_code {
            Some(code @ 1..=255) => ExitCode::from(code as u8),
            _ => ExitCode::FAILURE,
        }
    })
}

fn summary(rec: &RunRecord) -> String {
    let mut s =
        format!("run {} {} fuel={} duration={}", rec.id, rec.status, rec.fuel_consumed, fmt_us(rec.duration_us));
    if let Some(code) = rec.exit_code {
        s.push_str(&format!(" exit={code}"));
    }
    if let Some(err) = &rec.error {
        s.push_str(&format!(" error={}: {}", err.code, terminal_safe(&err.message)));
    }
    s
}

/// Guest-controlled text made safe for a terminal: control characters
/// (ANSI escapes, carriage returns) are shown escaped; newlines and tabs stay.
fn terminal_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' && c != '\t' { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

fn fmt_time(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn print_run_table(out: &mut dyn Write, runs: &[RunRecord]) -> Result<()> {
    writeln!(
        out,
        "{:<36}  {:<24}  {:<17}  {:<7}  {:>12}  {:>9}",
        "RUN", "STARTED", "STATUS", "KIND", "FUEL", "DURATION"
    )?;
    for r in runs {
        writeln!(
            out,
            "{:<36}  {:<24}  {:<17}  {:<7}  {:>12}  {:>9}",
            r.id.to_string(),
            fmt_time(r.started_at_ms),
            r.status.to_string(),
            r.kind.to_string(),
            r.fuel_consumed,
            fmt_us(r.duration_us)
        )?;
    }
    Ok(())
}

fn print_run(out: &mut dyn Write, r: &RunRecord) -> Result<()> {
    writeln!(out, "run        {}", r.id)?;
    writeln!(out, "workspace  {}", r.workspace)?;
    if let Some(p) = &r.principal {
        let mut who = format!("{p} ({})", p.role);
        if let Some(token) = p.token {
            who.push_str(&format!(", token {token}"));
        }
        writeln!(out, "principal  {who}")?;
    }
    if let Some(parent) = r.parent {
        writeln!(out, "parent     {parent}")?;
    }
    writeln!(out, "component  {} ({})", r.component_digest, r.kind)?;
    writeln!(out, "started    {}", fmt_time(r.started_at_ms))?;
    writeln!(out, "duration   {}", fmt_us(r.duration_us))?;
    writeln!(out, "status     {}", r.status)?;
    if let Some(code) = r.exit_code {
        writeln!(out, "exit code  {code}")?;
    }
    if let Some(e) = &r.error {
        writeln!(out, "error      {}: {}", e.code, terminal_safe(&e.message))?;
        if let Some(d) = &e.detail {
            writeln!(out, "detail     {}", terminal_safe(d))?;
        }
    }
    writeln!(out, "fuel       {}", r.fuel_consumed)?;
    writeln!(out, "memory     {} bytes", r.memory_bytes)?;
    writeln!(out, "bytes      input {} / output {} / log {}", r.input_bytes, r.output_bytes, r.log_bytes)?;
    writeln!(
        out,
        "\nspans ({}{})",
        r.spans.len(),
        if r.spans_dropped > 0 { format!(", {} dropped", r.spans_dropped) } else { String::new() }
    )?;
    if !r.spans.is_empty() {
        writeln!(
            out,
            "  {:>10}  {:>9}  {:<20}  {:<17}  {:>9}  {:>9}  DETAILS",
            "AT", "TOOK", "CALL", "OUTCOME", "IN", "OUT"
        )?;
        for s in &r.spans {
            let details: Vec<String> = s.attrs.iter().map(|(k, v)| format!("{k}={}", terminal_safe(v))).collect();
            writeln!(
                out,
                "  {:>10}  {:>9}  {:<20}  {:<17}  {:>9}  {:>9}  {}",
                fmt_us(s.start_offset_us),
                fmt_us(s.duration_us),
                format!("{}.{}", s.primitive, s.operation),
                s.outcome,
                s.bytes_in,
                s.bytes_out,
                details.join(" ")
            )?;
        }
    }
    if !r.host_errors.is_empty() {
        writeln!(out, "\nhost errors (operators only)")?;
        for e in &r.host_errors {
            writeln!(out, "  {}", terminal_safe(e))?;
        }
    }
    if !r.logs.is_empty() {
        writeln!(out, "\nlogs{}", if r.logs_truncated { " (truncated)" } else { "" })?;
        for l in &r.logs {
            writeln!(
                out,
                "  {:>10}  {:<6}  {}",
                fmt_us(l.offset_us),
                l.level.to_string(),
                terminal_safe(l.message.trim_end())
            )?;
        }
    }
    if let Some(output) = &r.output {
        writeln!(out, "\noutput{}", if r.output_truncated { " (truncated)" } else { "" })?;
        writeln!(out, "{}", terminal_safe(output))?;
    }
    Ok(())
}
