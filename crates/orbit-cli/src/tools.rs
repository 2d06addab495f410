//! `orbit tools`: install and manage a workspace's MCP servers.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use orbit::Orbit;
use orbit::Principal;
use orbit::orbit_tools::{Rule, ServerSpec, ServerTransport, ValueSource};
use serde::{Deserialize, Serialize};

use crate::parse_workspace;

/// `orbit tools ...`
#[derive(Subcommand, Serialize, Deserialize)]
pub(crate) enum ToolsCommand {
    /// Install an MCP server in a workspace, then connect once to list its
    /// tools.
    Add(AddArgs),
    /// List the workspace's servers and their tools.
    List {
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Connect to every enabled server first to refresh its tool list.
        #[arg(long)]
        refresh: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a server (and the policy rules naming it).
    Rm {
        /// Server name.
        name: String,
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Let runs use a server again.
    Enable {
        /// Server name.
        name: String,
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Hide a server from runs (its tools are not listed; calls get
    /// `not-found`).
    Disable {
        /// Server name.
        name: String,
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Allow calls to SERVER or SERVER/TOOL (the default for everything).
    /// With --read-only, open it to read-only members too, although its
    /// tools are not annotated readOnlyHint (--clear closes it again).
    Allow(RuleArgs),
    /// Deny calls to SERVER or SERVER/TOOL: they get `permission-denied`.
    /// A SERVER/TOOL rule overrides the SERVER rule.
    Deny(RuleArgs),
}

#[derive(Args, Serialize, Deserialize)]
pub(crate) struct AddArgs {
    /// Server name: 1 to 64 of a-z A-Z 0-9 _ -
    name: String,
    /// The member who owns it (only they or an admin may change it);
    /// default the workspace's owner.
    #[arg(long)]
    owner: Option<String>,
    /// Workspace.
    #[arg(long, default_value = "default")]
    workspace: String,
    /// Command line of a stdio server, such as
    /// 'npx -y @modelcontextprotocol/server-everything' (split like a shell
    /// would, not run by one).
    #[arg(long, group = "transport", required = true)]
    command: Option<String>,
    /// Endpoint of a streamable-HTTP server, such as http://127.0.0.1:3001/mcp.
    #[arg(long, group = "transport", required = true)]
    url: Option<String>,
    /// Environment variable of a stdio server, KEY=VALUE or KEY=secret:NAME
    /// (the workspace secret NAME, read from the vault at start); repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Header sent to an HTTP server, NAME=VALUE or NAME=secret:NAME;
    /// repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Do not connect to list the tools now.
    #[arg(long)]
    no_connect: bool,
    /// Offer its tools and prompts through the MCP gateway under their own
    /// names instead of NAME__TOOL (one such server per workspace).
    #[arg(long)]
    unprefixed: bool,
}

#[derive(Args, Serialize, Deserialize)]
pub(crate) struct RuleArgs {
    /// SERVER or SERVER/TOOL.
    target: String,
    /// Workspace.
    #[arg(long, default_value = "default")]
    workspace: String,
    /// Remove the rule instead of setting it.
    #[arg(long)]
    clear: bool,
    /// `allow` only: open SERVER or SERVER/TOOL to read-only members (the
    /// workspace vouches that it changes nothing); the allow/deny rules are
    /// left as they are.
    #[arg(long)]
    read_only: bool,
}

fn pairs(items: &[String], flag: &str) -> Result<Vec<(String, ValueSource)>> {
    items
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').with_context(|| format!("{flag} {kv:?}: expected KEY=VALUE"))?;
            Ok((k.to_owned(), ValueSource::parse(v)))
        })
        .collect()
}

/// Runs an `orbit tools` command.
pub(crate) async fn tools(
    cmd: ToolsCommand,
    orbit: &Orbit,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode> {
    let reg = orbit.tools().registry();
    match cmd {
        ToolsCommand::Add(a) => {
            let ws = parse_workspace(&a.workspace)?;
            let transport = match (&a.command, &a.url) {
                (Some(line), None) => ServerTransport::stdio_from_command_line(line)?,
                (None, Some(url)) => ServerTransport::Http { url: url.clone() },
                _ => bail!("give one of --command or --url"),
            };
            let mut spec = ServerSpec::new(transport);
            spec.env = pairs(&a.env, "--env")?;
            spec.headers = pairs(&a.headers, "--header")?;
            spec.unprefixed = a.unprefixed;
            let owner = a.owner.as_deref().map(crate::parse_user).transpose()?;
            let entry = orbit.install_server(&Principal::local_operator(), &ws, &a.name, spec, owner)?;
            let owner = entry.spec.owner.as_ref().map(|o| o.as_str()).unwrap_or("-");
            writeln!(err, "installed MCP server {} in workspace {ws} (owner {owner})", a.name)?;
            if !a.no_connect {
                match orbit.tools().refresh(&ws, &a.name).await {
                    Ok(tools) => writeln!(err, "{} tool(s): {}", tools.len(), names(&tools))?,
                    Err(e) => writeln!(err, "warning: could not list its tools yet: {e}")?,
                }
                orbit.tools().disconnect(&ws, &a.name);
            }
        }
        ToolsCommand::List { workspace, refresh, json } => {
            let ws = parse_workspace(&workspace)?;
            if refresh {
                for s in reg.list_servers(&ws)?.iter().filter(|s| s.enabled) {
                    if let Err(e) = orbit.tools().refresh(&ws, &s.name).await {
                        writeln!(err, "warning: {}: {e}", s.name)?;
                    }
                    orbit.tools().disconnect(&ws, &s.name);
                }
            }
            let servers = reg.list_servers(&ws)?;
            let policy = reg.policy(&ws)?;
            if json {
                let v = serde_json::json!({ "servers": servers, "policy": policy });
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            if servers.is_empty() {
                writeln!(out, "no MCP servers in workspace {ws}; add one with `orbit tools add NAME --command ...`")?;
            }
            for s in &servers {
                let how = match &s.spec.transport {
                    ServerTransport::Stdio { command, args } => format!("stdio: {command} {}", args.join(" ")),
                    ServerTransport::Http { url } => format!("http: {url}"),
                    other => format!("{other:?}"),
                };
                writeln!(out, "{}  {}  {}", s.name, if s.enabled { "enabled" } else { "disabled" }, how.trim_end())?;
                for (k, v) in &s.spec.env {
                    writeln!(out, "    env {k}={}", v.display())?;
                }
                for (k, v) in &s.spec.headers {
                    writeln!(out, "    header {k}: {}", v.display())?;
                }
                match &s.tools {
                    None => writeln!(out, "    tools not listed yet (orbit tools list --refresh)")?,
                    Some(tools) => {
                        for t in tools {
                            let denied = if policy.allows(&s.name, &t.name) { "" } else { "  [denied]" };
                            let desc = t.description.lines().next().unwrap_or("");
                            writeln!(out, "    {:<32} {}{denied}", t.name, crate::terminal_safe(desc))?;
                        }
                    }
                }
            }
            if !policy.rules.is_empty() || !policy.read_only_allow.is_empty() {
                writeln!(out, "policy")?;
                for (target, rule) in &policy.rules {
                    writeln!(out, "    {} {target}", if *rule == Rule::Deny { "deny " } else { "allow" })?;
                }
                for target in &policy.read_only_allow {
                    writeln!(out, "    allow {target} (read-only members too)")?;
                }
            }
        }
        ToolsCommand::Rm { name, workspace } => {
            let ws = parse_workspace(&workspace)?;
            orbit.remove_server(&Principal::local_operator(), &ws, &name)?;
            writeln!(err, "removed MCP server {name}")?;
        }
        ToolsCommand::Enable { name, workspace } => {
            orbit.set_server_enabled(&Principal::local_operator(), &parse_workspace(&workspace)?, &name, true)?;
            writeln!(err, "enabled {name}")?;
        }
        ToolsCommand::Disable { name, workspace } => {
            let ws = parse_workspace(&workspace)?;
            orbit.set_server_enabled(&Principal::local_operator(), &ws, &name, false)?;
            writeln!(err, "disabled {name}")?;
        }
        ToolsCommand::Allow(r) if r.read_only => {
            let ws = parse_workspace(&r.workspace)?;
            orbit.set_tool_read_only_allow(&Principal::local_operator(), &ws, &r.target, !r.clear)?;
            if r.clear {
                writeln!(err, "closed {} to read-only members again", r.target)?;
            } else {
                writeln!(err, "opened {} to read-only members", r.target)?;
            }
        }
        ToolsCommand::Deny(r) if r.read_only => bail!("--read-only applies to `allow` only"),
        ToolsCommand::Allow(r) | ToolsCommand::Deny(r) if r.clear => {
            orbit.set_tool_rule(&Principal::local_operator(), &parse_workspace(&r.workspace)?, &r.target, None)?;
            writeln!(err, "cleared the rule on {}", r.target)?;
        }
        ToolsCommand::Allow(r) => {
            let ws = parse_workspace(&r.workspace)?;
            orbit.set_tool_rule(&Principal::local_operator(), &ws, &r.target, Some(Rule::Allow))?;
            writeln!(err, "allowed {}", r.target)?;
        }
        ToolsCommand::Deny(r) => {
            let ws = parse_workspace(&r.workspace)?;
            orbit.set_tool_rule(&Principal::local_operator(), &ws, &r.target, Some(Rule::Deny))?;
            writeln!(err, "denied {}", r.target)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn names(tools: &[orbit::orbit_tools::ToolInfo]) -> String {
    tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
}
