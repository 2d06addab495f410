//! `orbit jobs`: register, list and remove stored jobs; show and work the
//! queue.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use orbit::JobDefaults;
use serde::{Deserialize, Serialize};

use crate::{Ctx, fmt_time, parse_workspace, read_component, terminal_safe};

#[derive(Subcommand, Serialize, Deserialize)]
pub(crate) enum JobsCommand {
    /// Register (or replace) a named job: a component and its default
    /// limits. The component is checked (compiled) and stored once per
    /// sha256.
    Add {
        /// Job name: 1 to 64 of A-Z a-z 0-9 - _ . (starting with a letter or digit).
        name: String,
        /// Path to the component (.wasm), or an agent's source (.py, .js,
        /// .mjs, .ts, .mts), built first.
        component: PathBuf,
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
        /// What the job does.
        #[arg(long)]
        description: Option<String>,
        /// Fuel per run, in wasmtime fuel units (default: the engine's).
        #[arg(long)]
        fuel: Option<u64>,
        /// Wall-clock limit per run, in milliseconds (default: the engine's).
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
    /// List a workspace's jobs.
    List {
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a job (its component goes when no other job uses it).
    Rm {
        /// Job name.
        name: String,
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Show a workspace's queued jobs, oldest first.
    Queue {
        /// Workspace.
        #[arg(long, default_value = "default")]
        workspace: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the queue until no job is queued or running (jobs left running
    /// by a crash are retried first).
    Work,
}

pub(crate) fn jobs(cmd: JobsCommand, ctx: &Ctx, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    let orbit = ctx.orbit;
    match cmd {
        JobsCommand::Add { name, component, workspace, description, fuel, timeout_ms } => {
            let wasm = read_component(&component)?;
            let mut defaults = JobDefaults::default();
            defaults.description = description;
            defaults.fuel = fuel;
            defaults.timeout_ms = timeout_ms;
            let ws = parse_workspace(&workspace)?;
            let spec = orbit
                .register_job(&orbit::Principal::local_operator(), &ws, &name, &wasm, defaults, None)
                .with_context(|| format!("registering job {name:?}"))?;
            writeln!(err, "registered job {} ({} bytes, sha256 {})", spec.name, spec.size_bytes, spec.digest)?;
        }
        JobsCommand::List { workspace, json } => {
            let specs = orbit.jobs().store().list(&parse_workspace(&workspace)?)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&specs)?)?;
            } else if specs.is_empty() {
                writeln!(out, "no jobs in workspace {workspace}")?;
            } else {
                writeln!(
                    out,
                    "{:<24}  {:<12}  {:>12}  {:>10}  {:<20}  DESCRIPTION",
                    "NAME", "DIGEST", "FUEL", "TIMEOUT", "ADDED"
                )?;
                for s in &specs {
                    let d = &s.defaults;
                    writeln!(
                        out,
                        "{:<24}  {:<12}  {:>12}  {:>10}  {:<24}  {}",
                        s.name,
                        &s.digest[..12.min(s.digest.len())],
                        d.fuel.map_or("default".into(), |f| f.to_string()),
                        d.timeout_ms.map_or("default".into(), |t| format!("{t}ms")),
                        fmt_time(s.created_at_ms),
                        terminal_safe(d.description.as_deref().unwrap_or(""))
                    )?;
                }
            }
        }
        JobsCommand::Rm { name, workspace } => {
            orbit.remove_job(&orbit::Principal::local_operator(), &parse_workspace(&workspace)?, &name)?;
            writeln!(err, "removed job {name}")?;
        }
        JobsCommand::Queue { workspace, limit, json } => {
            let jobs = orbit.jobs().store().jobs(&parse_workspace(&workspace)?, limit)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&jobs)?)?;
            } else {
                writeln!(out, "{:<36}  {:<20}  {:<9}  {:>8}  RUN", "ID", "JOB", "STATE", "ATTEMPTS")?;
                for j in &jobs {
                    let error = j.error.as_ref().map_or(String::new(), |e| format!(" ({})", e.code));
                    writeln!(
                        out,
                        "{:<36}  {:<20}  {:<9}  {:>8}  {}{}",
                        j.id,
                        j.name,
                        j.state,
                        j.attempts,
                        j.run_id.map_or("-".into(), |r| r.to_string()),
                        error
                    )?;
                }
            }
        }
        JobsCommand::Work => {
            ctx.rt.block_on(async {
                // In an owner process the queue workers already run.
                match ctx.workers {
                    Some(workers) => workers.wait_idle().await?,
                    None => orbit.start_workers()?.wait_idle().await?,
                }
                Ok::<_, orbit::orbit_jobs::JobsError>(())
            })?;
            writeln!(err, "the job queue is empty")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
