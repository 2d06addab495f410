//! `orbit ai provider add|list|rm`: the model providers of the `ai`
//! primitive, kept in `<data dir>/ai.json` (`orbit::AiConfig`).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use orbit::{AiConfig, ApiStyle, Orbit, ProviderConfig};
use serde::{Deserialize, Serialize};

/// `orbit ai ...`
#[derive(Subcommand, Serialize, Deserialize)]
pub(crate) enum AiCommand {
    /// Add, list and remove model providers (in $ORBIT_HOME/ai.json; runs
    /// started after the change use it).
    #[command(subcommand)]
    Provider(ProviderCommand),
}

/// `orbit ai provider ...`
#[derive(Subcommand, Serialize, Deserialize)]
pub(crate) enum ProviderCommand {
    /// Add a provider, or replace one of the same name.
    Add {
        /// Name guests use, e.g. `local`.
        name: String,
        /// Base URL, e.g. http://127.0.0.1:8080/v1 (llama.cpp),
        /// http://127.0.0.1:11434/v1 (Ollama), https://api.anthropic.com.
        #[arg(long)]
        base_url: String,
        /// API style.
        #[arg(long, value_enum, default_value = "openai")]
        api: Api,
        /// Vault secret holding the key (bound to the provider's origin);
        /// omit for a server without a key.
        #[arg(long)]
        key_secret: Option<String>,
        /// An allowed model (repeatable); `*` allows any.
        #[arg(long = "model", required = true)]
        models: Vec<String>,
        /// Give this workspace its own list (it then no longer sees the
        /// default list); without it, the default list of every workspace.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// List providers: the default list and each workspace's own.
    List {
        /// Print JSON (the providers section of ai.json).
        #[arg(long)]
        json: bool,
    },
    /// Remove a provider.
    Rm {
        /// Provider name.
        name: String,
        /// From this workspace's own list; without it, the default list.
        #[arg(long)]
        workspace: Option<String>,
    },
}

/// API styles, as `--api` spells them.
#[derive(Clone, Copy, ValueEnum, Serialize, Deserialize)]
pub(crate) enum Api {
    /// OpenAI-compatible chat/completions and embeddings (OpenAI, vLLM,
    /// llama.cpp, Ollama).
    Openai,
    /// Anthropic messages.
    Anthropic,
}

fn read(path: &Path) -> Result<AiConfig> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AiConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `config` to `path` through a temporary file and a rename, so a
/// reader never sees half a file.
fn write(path: &Path, config: &AiConfig) -> Result<()> {
    config.validate()?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(config)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

fn print_list(out: &mut dyn Write, label: &str, list: &[ProviderConfig]) -> Result<()> {
    writeln!(out, "{label}:")?;
    if list.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for p in list {
        let api = match p.api {
            ApiStyle::Anthropic => "anthropic",
            _ => "openai",
        };
        let key = p.key_secret.as_deref().unwrap_or("(no key)");
        writeln!(out, "  {:<16} {:<9} {:<40} key {:<16} models {}", p.name, api, p.base_url, key, p.models.join(","))?;
    }
    Ok(())
}

/// Runs an `orbit ai` command against `<data dir>/ai.json`.
pub(crate) fn ai(cmd: AiCommand, orbit: &Orbit, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode> {
    let path = orbit.data_dir().join("ai.json");
    let AiCommand::Provider(cmd) = cmd;
    match cmd {
        ProviderCommand::Add { name, base_url, api, key_secret, models, workspace } => {
            let mut config = read(&path)?;
            let api = match api {
                Api::Openai => ApiStyle::Openai,
                Api::Anthropic => ApiStyle::Anthropic,
            };
            let provider = ProviderConfig { name: name.clone(), base_url, api, key_secret, models };
            let list = match &workspace {
                Some(ws) => config.workspaces.entry(ws.clone()).or_default(),
                None => &mut config.providers,
            };
            list.retain(|p| p.name != name);
            list.push(provider);
            write(&path, &config)?;
            writeln!(err, "provider {name} saved in {}", path.display())?;
        }
        ProviderCommand::List { json } => {
            let config = read(&path)?;
            if json {
                let v = serde_json::json!({"providers": config.providers, "workspaces": config.workspaces});
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                print_list(out, "default", &config.providers)?;
                let mut names: Vec<&String> = config.workspaces.keys().collect();
                names.sort();
                for ws in names {
                    print_list(out, &format!("workspace {ws}"), &config.workspaces[ws])?;
                }
            }
        }
        ProviderCommand::Rm { name, workspace } => {
            let mut config = read(&path)?;
            let list = match &workspace {
                Some(ws) => config.workspaces.get_mut(ws),
                None => Some(&mut config.providers),
            };
            let Some(list) = list.filter(|l| l.iter().any(|p| p.name == name)) else {
                bail!("no provider {name}{}", workspace.map(|w| format!(" in workspace {w}")).unwrap_or_default());
            };
            list.retain(|p| p.name != name);
            write(&path, &config)?;
            writeln!(err, "provider {name} removed")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
