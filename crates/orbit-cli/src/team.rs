//! `orbit workspace|member|token|audit|notifications`: the team commands.
//! The CLI is the operator on the host, trusted as an owner and recorded
//! as `local:<os-user>`; every rule lives in the library.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use orbit::orbit_workspace::{AuditPage, parse_duration_ms};
use orbit::{AuditKind, AuditLog, AuditQuery, Orbit, Principal, Role, TeamStore, TokenRequest, UserId, WorkspaceId};
use serde::{Deserialize, Serialize};

/// `orbit workspace ...`
#[derive(Subcommand, Serialize, Deserialize)]
pub enum WorkspaceCommand {
    /// Create a workspace with its owner (its only member).
    Create {
        /// The workspace's slug (a-z, 0-9, '-', '_').
        slug: String,
        /// The owner's user handle.
        #[arg(long)]
        owner: String,
        /// A display name.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List every workspace.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a workspace and its members.
    Show {
        /// The workspace's slug.
        slug: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a workspace: its members and tokens (every token stops
    /// working at once) and its credentials.
    Rm {
        /// The workspace's slug.
        slug: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `orbit member ...`
#[derive(Subcommand, Serialize, Deserialize)]
pub enum MemberCommand {
    /// Add a member with a role. The second member makes the workspace a
    /// team workspace: everything in it is then shared.
    Add {
        /// The user's handle.
        user: String,
        /// read-only, member, admin or owner.
        #[arg(long)]
        role: String,
        /// A display name.
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        ws: WsArg,
    },
    /// List members.
    List {
        #[command(flatten)]
        ws: WsArg,
    },
    /// Change a member's role.
    Role {
        /// The member's handle.
        user: String,
        /// read-only, member, admin or owner.
        role: String,
        #[command(flatten)]
        ws: WsArg,
    },
    /// Remove a member: their tokens are revoked at once; what they added
    /// keeps working, flagged orphaned, and the admins are notified.
    Rm {
        /// The member's handle.
        user: String,
        #[command(flatten)]
        ws: WsArg,
    },
}

/// `orbit token ...`
#[derive(Subcommand, Serialize, Deserialize)]
pub enum TokenCommand {
    /// Issue a token. It is printed once, on stdout, and never again.
    Issue {
        /// The member it acts for.
        #[arg(long)]
        user: String,
        /// Its role (default: the member's); never above the member's.
        #[arg(long)]
        role: Option<String>,
        /// The agent it is for.
        #[arg(long)]
        agent: Option<String>,
        /// A name for it.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, such as 30m, 12h, 14d or 2w (default: no expiry).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        #[command(flatten)]
        ws: WsArg,
    },
    /// List tokens (metadata only).
    List {
        #[command(flatten)]
        ws: WsArg,
    },
    /// Revoke a token: once this returns, nothing succeeds with it, and
    /// its runs in flight end `cancelled`.
    Revoke {
        /// The token's id.
        id: String,
        #[command(flatten)]
        ws: WsArg,
    },
}

/// `--workspace SLUG` and `--json`, shared by the team commands.
#[derive(Args, Serialize, Deserialize)]
pub struct WsArg {
    /// The workspace.
    #[arg(long, default_value = "default")]
    pub workspace: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `orbit audit ...`
#[derive(Args, Serialize, Deserialize)]
pub struct AuditArgs {
    /// Only events by this member.
    #[arg(long)]
    pub user: Option<String>,
    /// Only tool calls to this server.
    #[arg(long)]
    pub server: Option<String>,
    /// Only tool calls of this tool.
    #[arg(long)]
    pub tool: Option<String>,
    /// Only events with this outcome (ok, tool-error, permission-denied, ...).
    #[arg(long)]
    pub outcome: Option<String>,
    /// Only events since TIME: a duration ago (24h, 7d) or an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events before TIME: a duration ago or an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Events per page (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Continue after this event id (the previous page's last).
    #[arg(long)]
    pub before: Option<String>,
    #[command(flatten)]
    pub ws: WsArg,
}

fn ws(name: &str) -> Result<WorkspaceId> {
    WorkspaceId::new(name).with_context(|| format!("workspace {name:?}"))
}

fn user(name: &str) -> Result<UserId> {
    UserId::new(name).with_context(|| format!("user {name:?}"))
}

fn role(name: &str) -> Result<Role> {
    Ok(name.parse::<Role>()?)
}

fn fmt_ms(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

fn json(out: &mut dyn Write, v: &impl serde::Serialize) -> Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
    Ok(())
}

/// Parses `--since`/`--until`: a duration before now, or an RFC 3339 time.
fn parse_time(text: &str) -> Result<u64> {
    if let Ok(ms) = parse_duration_ms(text) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
        return Ok(now.saturating_sub(ms));
    }
    let t = humantime::parse_rfc3339_weak(text)
        .map_err(|_| anyhow!("invalid time {text:?}: give a duration ago (24h, 7d) or an RFC 3339 time"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64)
}

/// `orbit workspace ...`
pub fn workspace(orbit: &Orbit, cmd: WorkspaceCommand, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    let op = Principal::local_operator();
    match cmd {
        WorkspaceCommand::Create { slug, owner, name, json: as_json } => {
            let rec = orbit.team().create_workspace(&op, &ws(&slug)?, &user(&owner)?, name.as_deref())?;
            if as_json {
                json(out, &rec)?;
            } else {
                writeln!(err, "created workspace {} owned by {owner}", rec.id)?;
            }
        }
        WorkspaceCommand::List { json: as_json } => {
            let list = orbit.team().workspaces()?;
            if as_json {
                json(out, &list)?;
            } else {
                writeln!(out, "{:<24}  {:<24}  {:<20}  CREATED BY", "WORKSPACE", "NAME", "CREATED")?;
                for w in list {
                    let name = w.name.as_deref().unwrap_or("");
                    writeln!(out, "{:<24}  {:<24}  {:<20}  {}", w.id, name, fmt_ms(w.created_at_ms), w.created_by)?;
                }
            }
        }
        WorkspaceCommand::Show { slug, json: as_json } => {
            let id = ws(&slug)?;
            let rec = orbit.require_workspace(&id)?;
            let members = orbit.team().members(&id)?;
            if as_json {
                json(out, &serde_json::json!({ "workspace": rec, "members": members, "team": members.len() > 1 }))?;
            } else {
                writeln!(out, "workspace  {}", rec.id)?;
                if let Some(n) = &rec.name {
                    writeln!(out, "name       {n}")?;
                }
                writeln!(out, "created    {} by {}", fmt_ms(rec.created_at_ms), rec.created_by)?;
                let kind = if members.len() > 1 { "team" } else { "personal" };
                writeln!(out, "kind       {kind} ({} members)", members.len())?;
                for m in members {
                    writeln!(out, "  {:<24} {}", m.user, m.role)?;
                }
            }
        }
        WorkspaceCommand::Rm { slug, json: as_json } => {
            let id = ws(&slug)?;
            orbit.delete_workspace(&op, &id)?;
            if as_json {
                json(out, &serde_json::json!({ "deleted": id }))?;
            } else {
                writeln!(err, "deleted workspace {id}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `orbit member ...`
pub fn member(orbit: &Orbit, cmd: MemberCommand, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    let op = Principal::local_operator();
    match cmd {
        MemberCommand::Add { user: u, role: r, display_name, ws: w } => {
            let added =
                orbit.team().add_member(&op, &ws(&w.workspace)?, &user(&u)?, role(&r)?, display_name.as_deref())?;
            if added.became_team {
                writeln!(
                    err,
                    "warning: {} now has two members: it is a team workspace, and everything in it \
                     (servers, credentials, storage, cache, db, runs) is shared with {u}",
                    w.workspace
                )?;
            }
            if w.json {
                json(out, &added)?;
            } else {
                writeln!(err, "added {u} to {} as {}", w.workspace, added.member.role)?;
            }
        }
        MemberCommand::List { ws: w } => {
            let members = orbit.team().members(&ws(&w.workspace)?)?;
            if w.json {
                json(out, &members)?;
            } else {
                writeln!(out, "{:<24}  {:<10}  {:<20}  ADDED BY", "USER", "ROLE", "ADDED")?;
                for m in members {
                    writeln!(out, "{:<24}  {:<10}  {:<20}  {}", m.user, m.role, fmt_ms(m.added_at_ms), m.added_by)?;
                }
            }
        }
        MemberCommand::Role { user: u, role: r, ws: w } => {
            let m = orbit.team().set_role(&op, &ws(&w.workspace)?, &user(&u)?, role(&r)?)?;
            if w.json {
                json(out, &m)?;
            } else {
                writeln!(err, "{u} is now {} in {}", m.role, w.workspace)?;
            }
        }
        MemberCommand::Rm { user: u, ws: w } => {
            let removed = orbit.remove_member(&op, &ws(&w.workspace)?, &user(&u)?)?;
            if w.json {
                json(out, &removed)?;
            } else {
                writeln!(err, "removed {u}; {} token(s) revoked", removed.revoked_tokens.len())?;
                for item in &removed.orphaned {
                    writeln!(err, "  orphaned {:?} {} ({})", item.kind, item.name, item.hosts.join(", "))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `orbit token ...`
pub fn token(orbit: &Orbit, cmd: TokenCommand, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    let op = Principal::local_operator();
    match cmd {
        TokenCommand::Issue { user: u, role: r, agent, name, expires_in, ws: w } => {
            let req = TokenRequest {
                user: user(&u)?,
                role: r.as_deref().map(role).transpose()?,
                agent: agent.as_deref().map(|a| a.parse().with_context(|| format!("agent {a:?}"))).transpose()?,
                name,
                expires_in_ms: expires_in.as_deref().map(parse_duration_ms).transpose().map_err(|e| anyhow!(e))?,
            };
            let issued = orbit.team().issue_token(&op, &ws(&w.workspace)?, req)?;
            if w.json {
                let mut v = serde_json::to_value(&issued.record)?;
                v["token"] = issued.secret.expose().into();
                json(out, &v)?;
            } else {
                writeln!(out, "{}", issued.secret.expose())?;
                writeln!(
                    err,
                    "token {} for {} ({}) in {}: shown once, store it now",
                    issued.record.id, issued.record.user, issued.record.role, w.workspace
                )?;
            }
        }
        TokenCommand::List { ws: w } => {
            let list = orbit.team().tokens(&op, &ws(&w.workspace)?)?;
            if w.json {
                json(out, &list)?;
            } else {
                writeln!(
                    out,
                    "{:<36}  {:<16}  {:<12}  {:<10}  {:<20}  {:<20}  STATE",
                    "ID", "USER", "AGENT", "ROLE", "LAST USED", "EXPIRES"
                )?;
                for t in list {
                    let state = if t.revoked_at_ms.is_some() { "revoked" } else { "active" };
                    writeln!(
                        out,
                        "{:<36}  {:<16}  {:<12}  {:<10}  {:<20}  {:<20}  {state}",
                        t.id,
                        t.user,
                        t.agent.as_ref().map(|a| a.as_str()).unwrap_or("-"),
                        t.role,
                        t.last_used_ms.map(fmt_ms).unwrap_or_else(|| "never".into()),
                        t.expires_at_ms.map(fmt_ms).unwrap_or_else(|| "never".into()),
                    )?;
                }
            }
        }
        TokenCommand::Revoke { id, ws: w } => {
            let id = id.parse().map_err(|_| anyhow!("invalid token id {id:?}"))?;
            let rec = orbit.revoke_token(&op, &ws(&w.workspace)?, id)?;
            if w.json {
                json(out, &rec)?;
            } else {
                writeln!(err, "revoked token {}", rec.id)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `orbit audit ...`: a page of events, newest first; `--json` prints
/// JSON lines (one event a line) for export.
pub fn audit(orbit: &Orbit, a: AuditArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let id = ws(&a.ws.workspace)?;
    orbit.require_workspace(&id)?;
    let q = AuditQuery {
        user: a.user.as_deref().map(user).transpose()?,
        server: a.server,
        tool: a.tool,
        outcome: a.outcome,
        since_ms: a.since.as_deref().map(parse_time).transpose()?,
        until_ms: a.until.as_deref().map(parse_time).transpose()?,
        before: a.before.as_deref().map(|b| b.parse()).transpose().map_err(|_| anyhow!("invalid --before id"))?,
        limit: a.limit,
        ..AuditQuery::new(id)
    };
    let AuditPage { events, next_cursor } = orbit.team().query(&q)?;
    if a.ws.json {
        for e in &events {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{:<20}  {:<20}  {:<20}  {:<36}  OUTCOME", "TIME", "ACTOR", "EVENT", "TARGET")?;
    for e in &events {
        let (event, target, outcome) = match &e.kind {
            AuditKind::ToolCall { server, tool, latency_us, outcome, .. } => {
                (format!("tool call {latency_us}µs"), format!("{server}/{tool}"), outcome.clone())
            }
            AuditKind::CredentialUse { secret, origin, .. } => {
                ("credential use".into(), format!("{secret} -> {origin}"), "ok".into())
            }
            AuditKind::Admin { action, target, detail, outcome } => {
                let t = match detail {
                    Some(d) => format!("{target} ({d})"),
                    None => target.clone(),
                };
                (action.clone(), t, outcome.clone())
            }
            other => (format!("{other:?}"), String::new(), String::new()),
        };
        let actor = match &e.actor.agent {
            Some(a) => format!("{}/{a}", e.actor.label),
            None => e.actor.label.clone(),
        };
        writeln!(out, "{:<20}  {:<20}  {:<20}  {:<36}  {outcome}", fmt_ms(e.at_ms), actor, event, target)?;
    }
    if let Some(c) = next_cursor {
        writeln!(out, "more: --before {c}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `orbit notifications --workspace SLUG`
pub fn notifications(orbit: &Orbit, w: WsArg, out: &mut dyn Write) -> Result<ExitCode> {
    let list = orbit.team().notifications(&Principal::local_operator(), &ws(&w.workspace)?)?;
    if w.json {
        json(out, &list)?;
    } else {
        for n in list {
            writeln!(out, "{}  {}  {}", fmt_ms(n.at_ms), n.kind, n.message)?;
            for item in n.items {
                writeln!(out, "    {:?} {}  {}", item.kind, item.name, item.hosts.join(", "))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
