//! The per-workspace registry of installed MCP servers, their tool lists and
//! the workspace's tool policy.
//!
//! One JSON file per workspace, `<data dir>/tools/<workspace>.json`, so that
//! `orbit tools add` works while another process (`orbit serve`) has the
//! same data directory open. Every change takes an exclusive advisory lock on
//! `<workspace>.lock`, reads the file, changes it and replaces it atomically
//! (write to a temporary file, fsync, rename, fsync the directory). Readers
//! never lock: a rename is atomic, so they see the old or the new file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use orbit_workspace::WorkspaceId;
use serde::{Deserialize, Serialize};

use crate::error::ToolsError;

/// Longest server name, in bytes.
pub const MAX_SERVER_NAME_BYTES: usize = 64;

/// How Orbit reaches an MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerTransport {
    /// A child process speaking MCP over stdin/stdout (the MCP stdio
    /// transport, <https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#stdio>).
    Stdio {
        /// The program, looked up on `PATH` when it has no slash.
        command: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// An MCP endpoint over streamable HTTP
    /// (<https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http>).
    Http {
        /// The endpoint URL, such as `http://127.0.0.1:3001/mcp`.
        url: String,
    },
}

impl ServerTransport {
    /// A stdio transport from a command line, split like a POSIX shell
    /// would (quotes and backslashes), without running a shell.
    ///
    /// # Errors
    /// [`ToolsError::InvalidSpec`] when the line is empty or its quoting is
    /// unbalanced.
    pub fn stdio_from_command_line(line: &str) -> Result<Self, ToolsError> {
        let mut words =
            shlex::split(line).ok_or_else(|| ToolsError::InvalidSpec("unbalanced quotes in --command".into()))?;
        if words.is_empty() {
            return Err(ToolsError::InvalidSpec("empty --command".into()));
        }
        let command = words.remove(0);
        Ok(Self::Stdio { command, args: words })
    }
}

/// Where the value of an environment variable or header comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueSource {
    /// A plain value, stored and shown as is: only for settings that are
    /// not secret.
    Literal(String),
    /// The workspace secret of this name, read from the vault each time the
    /// server is started (stdio) or connected (HTTP). Never stored or shown.
    Secret(String),
}

impl ValueSource {
    /// Parses `secret:NAME` as a secret reference and anything else as a
    /// literal.
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("secret:") {
            Some(name) => Self::Secret(name.to_owned()),
            None => Self::Literal(text.to_owned()),
        }
    }

    /// How the value is shown: the literal, or `secret:NAME`.
    pub fn display(&self) -> String {
        match self {
            Self::Literal(v) => v.clone(),
            Self::Secret(name) => format!("secret:{name}"),
        }
    }
}

/// What `orbit tools add` installs: how to reach a server and what to give
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerSpec {
    /// How to reach it.
    pub transport: ServerTransport,
    /// Environment variables for a stdio server, besides the few inherited
    /// from Orbit ([`crate::INHERITED_ENV`]).
    #[serde(default)]
    pub env: Vec<(String, ValueSource)>,
    /// Headers sent with every request to an HTTP server.
    #[serde(default)]
    pub headers: Vec<(String, ValueSource)>,
    /// The member who installed it (`None` for servers installed before
    /// owners existed, or by an embedding program). When the owner leaves
    /// the workspace the server keeps working and is reported orphaned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<orbit_workspace::UserId>,
    /// Whether the MCP gateway offers its tools and prompts under their own
    /// names instead of `<server>__<name>`. At most one server of a
    /// workspace is installed so; a name that clashes with Orbit's own
    /// tools or another server's is not offered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unprefixed: bool,
}

impl ServerSpec {
    /// A spec with `transport`, no environment or headers, and no owner.
    pub fn new(transport: ServerTransport) -> Self {
        Self { transport, env: Vec::new(), headers: Vec::new(), owner: None, unprefixed: false }
    }

    /// Offers the server's tools and prompts through the gateway under their
    /// own names ([`ServerSpec::unprefixed`]).
    pub fn unprefixed(mut self, unprefixed: bool) -> Self {
        self.unprefixed = unprefixed;
        self
    }

    /// Sets the member who owns the server.
    pub fn owner(mut self, user: orbit_workspace::UserId) -> Self {
        self.owner = Some(user);
        self
    }

    /// Where the server runs, for people: its URL, or its command's name
    /// (never its arguments or environment, which may hold secrets).
    pub fn location(&self) -> String {
        match &self.transport {
            ServerTransport::Http { url } => url.clone(),
            ServerTransport::Stdio { command, .. } => format!("stdio: {command}"),
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: ValueSource) -> Self {
        self.env.push((key.into(), value));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: ValueSource) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    fn validate(&self) -> Result<(), ToolsError> {
        match &self.transport {
            ServerTransport::Stdio { command, .. } if command.is_empty() => {
                return Err(ToolsError::InvalidSpec("empty command".into()));
            }
            ServerTransport::Stdio { .. } => {
                if !self.headers.is_empty() {
                    return Err(ToolsError::InvalidSpec("headers apply to --url servers only".into()));
                }
            }
            ServerTransport::Http { url } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ToolsError::InvalidSpec(format!("url {url:?} is not http:// or https://")));
                }
                if !self.env.is_empty() {
                    return Err(ToolsError::InvalidSpec(
                        "environment variables apply to --command servers only".into(),
                    ));
                }
            }
        }
        for (key, _) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(ToolsError::InvalidSpec(format!("environment variable name {key:?}")));
            }
        }
        for (name, _) in &self.headers {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
                return Err(ToolsError::InvalidSpec(format!("header name {name:?}")));
            }
        }
        Ok(())
    }
}

/// One tool of an installed server, as its server lists it (MCP
/// `tools/list`, <https://modelcontextprotocol.io/specification/2025-06-18/server/tools#listing-tools>).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// The server's name in the workspace.
    pub server: String,
    /// The tool's name.
    pub name: String,
    /// Its description; empty when the server gives none.
    pub description: String,
    /// The JSON Schema of its arguments (an object schema).
    pub input_schema: serde_json::Value,
    /// The server's `readOnlyHint` annotation: `Some(true)` when the server
    /// says the tool changes nothing; `None` when it does not say (lists
    /// stored before annotations were kept read as `None`). Read-only
    /// principals may call only tools with `Some(true)`, unless the policy
    /// opens the tool to them ([`ToolPolicy::read_only_allow`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// The tool exactly as the server listed it (MCP `Tool` JSON: title,
    /// annotations, output schema, `_meta`), for the gateway to pass
    /// through; `None` in lists stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<serde_json::Value>,
}

/// An installed server as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerEntry {
    /// The server's name in the workspace.
    pub name: String,
    /// Changes each time a server of this name is (re)installed, so that a
    /// pooled connection to an older install is not reused.
    pub install_id: u64,
    /// How to reach it and what to give it.
    pub spec: ServerSpec,
    /// Whether runs may use it.
    pub enabled: bool,
    /// When it was installed, in ms since the Unix epoch.
    pub added_at_ms: u64,
    /// Its tools as last listed; `None` until Orbit first connected.
    pub tools: Option<Vec<ToolInfo>>,
    /// When `tools` was last refreshed, in ms since the Unix epoch.
    pub tools_refreshed_at_ms: Option<u64>,
}

/// A policy decision for a server or one of its tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Calls are allowed.
    Allow,
    /// Calls are refused with `permission-denied`.
    Deny,
}

/// The workspace's tool policy: rules on `SERVER` or `SERVER/TOOL`.
///
/// A call is decided by the rule on `SERVER/TOOL` if there is one, else by
/// the rule on `SERVER`, else it is allowed. So `deny srv` with
/// `allow srv/echo` allows only `echo` of `srv`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPolicy {
    /// Rules by target (`SERVER` or `SERVER/TOOL`).
    pub rules: BTreeMap<String, Rule>,
    /// Targets (`SERVER` or `SERVER/TOOL`) opened to read-only principals
    /// although their tools are not annotated `readOnlyHint: true`: the
    /// workspace vouches that they change nothing. The allow/deny
    /// [`rules`](Self::rules) still apply.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub read_only_allow: BTreeSet<String>,
}

impl ToolPolicy {
    /// Whether the policy opens `tool` of `server` to read-only principals
    /// (a [`read_only_allow`](Self::read_only_allow) entry on `SERVER/TOOL`
    /// or on `SERVER`).
    pub fn opens_to_read_only(&self, server: &str, tool: &str) -> bool {
        self.read_only_allow.contains(&format!("{server}/{tool}")) || self.read_only_allow.contains(server)
    }

    /// Whether the server as a whole is not denied (a rule on `SERVER`):
    /// its prompts and resources are offered only then.
    pub fn allows_server(&self, server: &str) -> bool {
        !matches!(self.rules.get(server), Some(Rule::Deny))
    }

    /// Whether `tool` of `server` may be called.
    pub fn allows(&self, server: &str, tool: &str) -> bool {
        let rule = self.rules.get(&format!("{server}/{tool}")).or_else(|| self.rules.get(server));
        !matches!(rule, Some(Rule::Deny))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct WorkspaceTools {
    #[serde(default)]
    servers: BTreeMap<String, ServerEntry>,
    #[serde(default)]
    policy: ToolPolicy,
}

/// The registry of MCP servers installed in each workspace, with their
/// cached tool lists and the workspace's [`ToolPolicy`].
///
/// Safe to share between threads and between processes using the same data
/// directory (see the module docs).
pub struct ToolRegistry {
    dir: PathBuf,
    /// Parsed files by workspace, with the (length, mtime) they were read at.
    cache: Mutex<BTreeMap<String, (FileStamp, std::sync::Arc<WorkspaceTools>)>>,
    /// Workspaces whose offered tools changed (see [`ToolRegistry::subscribe`]).
    changes: tokio::sync::broadcast::Sender<WorkspaceId>,
}

/// What [`ToolRegistry::cached`] found: the current parse, or the file to
/// read and the stamp it had.
enum Cached {
    Fresh(std::sync::Arc<WorkspaceTools>),
    Stale(PathBuf, FileStamp),
}

/// One workspace's servers and policy as read at one moment, shared rather
/// than copied: a gateway call looks its tool up in it without cloning every
/// server's tool definitions. A later change to the workspace is not seen;
/// read a new one.
#[derive(Debug, Clone)]
pub struct RegistrySnapshot(std::sync::Arc<WorkspaceTools>);

impl RegistrySnapshot {
    /// Every server installed, enabled or not, by name.
    pub fn servers(&self) -> impl Iterator<Item = &ServerEntry> {
        self.0.servers.values()
    }

    /// Server `name`, if installed.
    pub fn server(&self, name: &str) -> Option<&ServerEntry> {
        self.0.servers.get(name)
    }

    /// The workspace's policy.
    pub fn policy(&self) -> &ToolPolicy {
        &self.0.policy
    }
}

/// What a workspace offers to callers: each server's name, state and tools,
/// and the policy; not when lists were refreshed.
fn offered(doc: &WorkspaceTools) -> serde_json::Value {
    let servers: Vec<_> = doc.servers.values().map(|s| (&s.name, s.enabled, &s.tools)).collect();
    serde_json::json!({ "servers": servers, "policy": doc.policy })
}

/// What tells a workspace's file apart from the one a cached parse was read
/// from: length, mtime and (on Unix) inode. Every write renames a new file
/// into place, so the inode changes even when a rewrite keeps the length
/// and lands within one tick of a coarse file-system clock (a policy rule
/// flipped by another process, say).
type FileStamp = (u64, Option<SystemTime>, u64);

fn stamp(m: &std::fs::Metadata) -> FileStamp {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(m);
    #[cfg(not(unix))]
    let inode = 0;
    (m.len(), m.modified().ok(), inode)
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Checks a server name: 1 to 64 of `a-z A-Z 0-9 _ -`.
///
/// # Errors
/// [`ToolsError::InvalidName`].
pub fn check_server_name(name: &str) -> Result<(), ToolsError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SERVER_NAME_BYTES
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(ToolsError::InvalidName(name.chars().take(80).collect())) }
}

impl ToolRegistry {
    /// Opens the registry of data directory `data_dir` (files under
    /// `<data_dir>/tools/`), creating the directory if needed.
    ///
    /// # Errors
    /// [`ToolsError::Io`] when the directory cannot be created.
    pub fn open(data_dir: &Path) -> Result<Self, ToolsError> {
        let dir = data_dir.join("tools");
        std::fs::create_dir_all(&dir).map_err(|e| ToolsError::io(&dir, e))?;
        Ok(Self { dir, cache: Mutex::new(BTreeMap::new()), changes: tokio::sync::broadcast::channel(64).0 })
    }

    fn file(&self, ws: &WorkspaceId) -> PathBuf {
        self.dir.join(format!("{}.json", ws.as_str()))
    }

    fn read(&self, ws: &WorkspaceId) -> Result<std::sync::Arc<WorkspaceTools>, ToolsError> {
        match self.cached(ws)? {
            Cached::Fresh(parsed) => Ok(parsed),
            Cached::Stale(path, stamp) => {
                let parsed = std::sync::Arc::new(read_file(&path)?);
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                cache.insert(ws.as_str().to_owned(), (stamp, parsed.clone()));
                Ok(parsed)
            }
        }
    }

    /// The cached parse of `ws`'s file if the file has not changed since
    /// (one `stat`), or what [`read`](Self::read) must read.
    fn cached(&self, ws: &WorkspaceId) -> Result<Cached, ToolsError> {
        let path = self.file(ws);
        let stamp = match std::fs::metadata(&path) {
            Ok(m) => stamp(&m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Cached::Fresh(Default::default())),
            Err(e) => return Err(ToolsError::io(&path, e)),
        };
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(ws.as_str()) {
            Some((s, parsed)) if *s == stamp => Ok(Cached::Fresh(parsed.clone())),
            _ => Ok(Cached::Stale(path, stamp)),
        }
    }

    /// Runs `change` on the workspace's file under its lock and writes the
    /// result back.
    fn update<T>(
        &self,
        ws: &WorkspaceId,
        change: impl FnOnce(&mut WorkspaceTools) -> Result<T, ToolsError>,
    ) -> Result<T, ToolsError> {
        let lock_path = self.dir.join(format!("{}.lock", ws.as_str()));
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| ToolsError::io(&lock_path, e))?;
        lock.lock().map_err(|e| ToolsError::io(&lock_path, e))?;
        let path = self.file(ws);
        let mut doc = match std::fs::metadata(&path) {
            Ok(_) => read_file(&path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => WorkspaceTools::default(),
            Err(e) => return Err(ToolsError::io(&path, e)),
        };
        let before = offered(&doc);
        let out = change(&mut doc)?;
        let changed = offered(&doc) != before;
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| ToolsError::Corrupt(e.to_string()))?;
        let tmp = self.dir.join(format!("{}.json.tmp", ws.as_str()));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| ToolsError::io(&path, e))?;
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(ws.as_str());
        drop(lock);
        if changed {
            // No subscriber is fine: nobody is listening.
            let _ = self.changes.send(ws.clone());
        }
        Ok(out)
    }

    /// Tells of every change, in this process, to what a workspace offers:
    /// a server installed, removed, enabled or disabled, its tool list
    /// changed, or the policy changed. Each message is the workspace's id.
    /// A receiver that falls more than 64 changes behind gets
    /// `RecvError::Lagged`, and should treat every workspace as changed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<WorkspaceId> {
        self.changes.subscribe()
    }

    /// Installs server `name` in `ws`, enabled, with no tool list yet.
    ///
    /// # Errors
    /// [`ToolsError::InvalidName`], [`ToolsError::InvalidSpec`],
    /// [`ToolsError::AlreadyExists`] when a server of that name is installed
    /// (remove it first), [`ToolsError::InvalidSpec`] for a second
    /// unprefixed server (their names would clash), or [`ToolsError::Io`].
    pub fn add_server(&self, ws: &WorkspaceId, name: &str, spec: ServerSpec) -> Result<ServerEntry, ToolsError> {
        check_server_name(name)?;
        spec.validate()?;
        self.update(ws, |doc| {
            if doc.servers.contains_key(name) {
                return Err(ToolsError::AlreadyExists(name.to_owned()));
            }
            if spec.unprefixed
                && let Some(other) = doc.servers.values().find(|s| s.spec.unprefixed)
            {
                return Err(ToolsError::InvalidSpec(format!(
                    "server {} is already offered without a prefix: two could offer the same names",
                    other.name
                )));
            }
            let added_at_ms = now_ms();
            let entry = ServerEntry {
                name: name.to_owned(),
                install_id: install_id(added_at_ms),
                spec,
                enabled: true,
                added_at_ms,
                tools: None,
                tools_refreshed_at_ms: None,
            };
            doc.servers.insert(name.to_owned(), entry.clone());
            Ok(entry)
        })
    }

    /// Removes server `name` from `ws`, with the policy rules (and
    /// read-only openings) that name it.
    /// Returns whether it was installed.
    ///
    /// # Errors
    /// [`ToolsError::Io`] or [`ToolsError::Corrupt`].
    pub fn remove_server(&self, ws: &WorkspaceId, name: &str) -> Result<bool, ToolsError> {
        self.update(ws, |doc| {
            let prefix = format!("{name}/");
            doc.policy.rules.retain(|target, _| target != name && !target.starts_with(&prefix));
            doc.policy.read_only_allow.retain(|target| target != name && !target.starts_with(&prefix));
            Ok(doc.servers.remove(name).is_some())
        })
    }

    /// Enables or disables server `name` of `ws`. A disabled server is
    /// absent for runs: its tools are not listed, calls to it get
    /// `not-found`, and its pooled connection is closed on the next call.
    ///
    /// # Errors
    /// [`ToolsError::NoSuchServer`], [`ToolsError::Io`].
    pub fn set_enabled(&self, ws: &WorkspaceId, name: &str, enabled: bool) -> Result<(), ToolsError> {
        self.update(ws, |doc| {
            let entry = doc.servers.get_mut(name).ok_or_else(|| ToolsError::NoSuchServer(name.to_owned()))?;
            entry.enabled = enabled;
            Ok(())
        })
    }

    /// Server `name` of `ws`, if installed.
    ///
    /// # Errors
    /// [`ToolsError::Io`] or [`ToolsError::Corrupt`].
    pub fn server(&self, ws: &WorkspaceId, name: &str) -> Result<Option<ServerEntry>, ToolsError> {
        Ok(self.read(ws)?.servers.get(name).cloned())
    }

    /// `ws`'s servers and policy as they are now, without copying them
    /// (the parsed file is cached and shared until it changes on disk).
    ///
    /// # Errors
    /// [`ToolsError::Io`] or [`ToolsError::Corrupt`].
    pub fn snapshot(&self, ws: &WorkspaceId) -> Result<RegistrySnapshot, ToolsError> {
        self.read(ws).map(RegistrySnapshot)
    }

    /// [`snapshot`](Self::snapshot) when the cached parse is current: one
    /// `stat` of the workspace's file, no read or parse, so async code may
    /// call it in place and leave the rest to a blocking thread.
    ///
    /// `Some` when the file's stamp (length, mtime, inode) is the one the
    /// cache was read at, or when the workspace has no file (an empty
    /// snapshot); `None` when the file must be read: it changed on disk,
    /// was never read by this registry, or this registry wrote it since.
    ///
    /// # Errors
    /// [`ToolsError::Io`] when the file cannot be examined.
    pub fn snapshot_if_cached(&self, ws: &WorkspaceId) -> Result<Option<RegistrySnapshot>, ToolsError> {
        Ok(match self.cached(ws)? {
            Cached::Fresh(parsed) => Some(RegistrySnapshot(parsed)),
            Cached::Stale(..) => None,
        })
    }

    /// Every server installed in `ws`, enabled or not, by name.
    ///
    /// # Errors
    /// [`ToolsError::Io`] or [`ToolsError::Corrupt`].
    pub fn list_servers(&self, ws: &WorkspaceId) -> Result<Vec<ServerEntry>, ToolsError> {
        Ok(self.read(ws)?.servers.values().cloned().collect())
    }

    /// The tools of `ws` a run may call: those of enabled servers, as last
    /// listed, that the workspace policy allows, by server then tool name.
    /// A server Orbit has not yet connected to contributes nothing (see
    /// [`crate::Tools::list`], which connects first).
    ///
    /// # Errors
    /// [`ToolsError::Io`] or [`ToolsError::Corrupt`].
    pub fn list_tools(&self, ws: &WorkspaceId) -> Result<Vec<ToolInfo>, ToolsError> {
        let doc = self.read(ws)?;
        let mut out = Vec::new();
        for s in doc.servers.values().filter(|s| s.enabled) {
            for t in s.tools.iter().flatten() {
                if doc.policy.allows(&s.name, &t.name) {
                    out.push(t.clone());
                }
            }
        }
        Ok(out)
    }

    /// Stores the tool list of server `name` of `ws`, unless the server was
    /// removed or reinstalled (a different `install_id`) meanwhile. Returns
    /// whether it was stored.
    ///
    /// # Errors
    /// [`ToolsError::Io`] or [`ToolsError::Corrupt`].
    pub fn set_tools(
        &self,
        ws: &WorkspaceId,
        name: &str,
        install_id: u64,
        tools: Vec<ToolInfo>,
    ) -> Result<bool, ToolsError> {
        if let Some(current) = self.read(ws)?.servers.get(name)
            && current.install_id == install_id
            && current.tools.as_ref() == Some(&tools)
        {
            return Ok(true);
        }
        self.update(ws, |doc| match doc.servers.get_mut(name) {
            Some(entry) if entry.install_id == install_id => {
                entry.tools = Some(tools);
                entry.tools_refreshed_at_ms = Some(now_ms());
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    /// The policy of `ws`.
    ///
    /// # Errors
    /// [`ToolsError::Io`] or [`ToolsError::Corrupt`].
    pub fn policy(&self, ws: &WorkspaceId) -> Result<ToolPolicy, ToolsError> {
        Ok(self.read(ws)?.policy.clone())
    }

    /// Sets the rule on `target` (`SERVER` or `SERVER/TOOL`) in `ws`, or
    /// removes it with `None`. The server need not be installed yet.
    ///
    /// # Errors
    /// [`ToolsError::InvalidName`] for a malformed target, [`ToolsError::Io`].
    pub fn set_rule(&self, ws: &WorkspaceId, target: &str, rule: Option<Rule>) -> Result<(), ToolsError> {
        check_target(target)?;
        self.update(ws, |doc| {
            match rule {
                Some(r) => doc.policy.rules.insert(target.to_owned(), r),
                None => doc.policy.rules.remove(target),
            };
            Ok(())
        })
    }
}

impl ToolRegistry {
    /// Opens `target` (`SERVER` or `SERVER/TOOL`) of `ws` to read-only
    /// principals with `open`, or closes it again
    /// ([`ToolPolicy::read_only_allow`]). The server need not be installed
    /// yet.
    ///
    /// # Errors
    /// [`ToolsError::InvalidName`] for a malformed target, [`ToolsError::Io`].
    pub fn set_read_only_allow(&self, ws: &WorkspaceId, target: &str, open: bool) -> Result<(), ToolsError> {
        check_target(target)?;
        self.update(ws, |doc| {
            if open {
                doc.policy.read_only_allow.insert(target.to_owned());
            } else {
                doc.policy.read_only_allow.remove(target);
            }
            Ok(())
        })
    }
}

/// Checks a policy target: `SERVER` or `SERVER/TOOL`.
fn check_target(target: &str) -> Result<(), ToolsError> {
    let (server, tool) = match target.split_once('/') {
        Some((s, t)) => (s, Some(t)),
        None => (target, None),
    };
    check_server_name(server)?;
    if let Some(t) = tool
        && (t.is_empty() || t.len() > 128 || t.chars().any(char::is_control))
    {
        return Err(ToolsError::InvalidName(target.chars().take(80).collect()));
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<WorkspaceTools, ToolsError> {
    let bytes = std::fs::read(path).map_err(|e| ToolsError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| ToolsError::Corrupt(format!("{}: {e}", path.display())))
}

/// A fresh install id: the install time mixed with a process-wide counter,
/// so two installs in the same millisecond differ.
fn install_id(at_ms: u64) -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (at_ms << 16) ^ (u64::from(std::process::id()) << 8) ^ n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(name: &str) -> WorkspaceId {
        WorkspaceId::new(name).unwrap()
    }

    #[test]
    fn servers_are_per_workspace_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let reg = ToolRegistry::open(dir.path()).unwrap();
        let spec = ServerSpec::new(ServerTransport::stdio_from_command_line("npx -y 'a b'").unwrap())
            .env("TOKEN", ValueSource::parse("secret:API_TOKEN"))
            .env("TZ", ValueSource::parse("UTC"));
        let entry = reg.add_server(&ws("a"), "srv", spec.clone()).unwrap();
        assert!(matches!(reg.add_server(&ws("a"), "srv", spec.clone()), Err(ToolsError::AlreadyExists(_))));
        assert!(reg.list_servers(&ws("b")).unwrap().is_empty());
        // One unprefixed server per workspace: a second could offer the same names.
        reg.add_server(&ws("b"), "first", spec.clone().unprefixed(true)).unwrap();
        let second = reg.add_server(&ws("b"), "second", spec.clone().unprefixed(true));
        assert!(matches!(second, Err(ToolsError::InvalidSpec(ref why)) if why.contains("first")), "{second:?}");
        reg.add_server(&ws("b"), "second", spec.clone()).unwrap();
        reg.remove_server(&ws("b"), "first").unwrap();
        reg.remove_server(&ws("b"), "second").unwrap();
        let tool = ToolInfo {
            server: "srv".into(),
            name: "echo".into(),
            description: "Echoes".into(),
            input_schema: serde_json::json!({"type": "object"}),
            read_only_hint: Some(true),
            definition: None,
        };
        assert!(reg.set_tools(&ws("a"), "srv", entry.install_id, vec![tool.clone()]).unwrap());
        // A list for an older install is not stored.
        assert!(!reg.set_tools(&ws("a"), "srv", entry.install_id + 1, vec![]).unwrap());
        drop(reg);

        let reg = ToolRegistry::open(dir.path()).unwrap();
        let got = reg.server(&ws("a"), "srv").unwrap().unwrap();
        assert_eq!(got.spec, spec);
        assert_eq!(
            got.spec.transport,
            ServerTransport::Stdio { command: "npx".into(), args: vec!["-y".into(), "a b".into()] }
        );
        assert_eq!(reg.list_tools(&ws("a")).unwrap(), vec![tool]);
        reg.set_enabled(&ws("a"), "srv", false).unwrap();
        assert!(reg.list_tools(&ws("a")).unwrap().is_empty());
        assert!(reg.remove_server(&ws("a"), "srv").unwrap());
        assert!(!reg.remove_server(&ws("a"), "srv").unwrap());
    }

    #[test]
    fn a_snapshot_is_served_in_place_only_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let reg = ToolRegistry::open(dir.path()).unwrap();
        let w = ws("w");
        let names = |s: &RegistrySnapshot| s.servers().map(|e| e.name.clone()).collect::<Vec<_>>();
        // No file yet: nothing to read, so nothing for a blocking thread.
        assert_eq!(names(&reg.snapshot_if_cached(&w).unwrap().unwrap()), Vec::<String>::new());
        let spec = ServerSpec::new(ServerTransport::Http { url: "http://127.0.0.1:1/mcp".into() });
        reg.add_server(&w, "one", spec.clone()).unwrap();
        assert!(reg.snapshot_if_cached(&w).unwrap().is_none(), "written but not yet read");
        assert_eq!(names(&reg.snapshot(&w).unwrap()), ["one"]);
        assert_eq!(names(&reg.snapshot_if_cached(&w).unwrap().unwrap()), ["one"]);
        // A change by another process (another registry on the directory).
        ToolRegistry::open(dir.path()).unwrap().add_server(&w, "two", spec).unwrap();
        assert!(reg.snapshot_if_cached(&w).unwrap().is_none(), "changed on disk");
        assert_eq!(names(&reg.snapshot(&w).unwrap()), ["one", "two"]);
        assert_eq!(names(&reg.snapshot_if_cached(&w).unwrap().unwrap()), ["one", "two"]);
    }

    /// Another process rewrites the file with the same length within one
    /// tick of the file system's clock: the rename gives it a new inode.
    #[cfg(unix)]
    #[test]
    fn a_same_length_rewrite_in_the_same_mtime_tick_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let reg = ToolRegistry::open(dir.path()).unwrap();
        let w = ws("w");
        reg.set_rule(&w, "aaa", Some(Rule::Deny)).unwrap();
        assert!(!reg.snapshot(&w).unwrap().policy().allows("aaa", "t"));
        let path = dir.path().join("tools").join("w.json");
        let before = std::fs::metadata(&path).unwrap();
        // The same document with the rule moved to `bbb`, written as the
        // registry writes (a new file renamed into place).
        let text = std::fs::read_to_string(&path).unwrap().replace("\"aaa\"", "\"bbb\"");
        let tmp = dir.path().join("tools").join("w.json.other");
        std::fs::write(&tmp, &text).unwrap();
        File::options().write(true).open(&tmp).unwrap().set_modified(before.modified().unwrap()).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!((after.len(), after.modified().unwrap()), (before.len(), before.modified().unwrap()));
        let policy = reg.snapshot(&w).unwrap().policy().clone();
        assert!(policy.allows("aaa", "t"), "the rewrite is seen");
        assert!(!policy.allows("bbb", "t"));
    }

    #[test]
    fn policy_tool_rule_overrides_server_rule() {
        let dir = tempfile::tempdir().unwrap();
        let reg = ToolRegistry::open(dir.path()).unwrap();
        let w = ws("w");
        assert!(reg.policy(&w).unwrap().allows("srv", "echo"));
        reg.set_rule(&w, "srv", Some(Rule::Deny)).unwrap();
        reg.set_rule(&w, "srv/echo", Some(Rule::Allow)).unwrap();
        let p = reg.policy(&w).unwrap();
        assert!(p.allows("srv", "echo"));
        assert!(!p.allows("srv", "add"));
        assert!(p.allows("other", "add"));
        reg.set_rule(&w, "srv", None).unwrap();
        assert!(reg.policy(&w).unwrap().allows("srv", "add"));
        assert!(matches!(reg.set_rule(&w, "bad name", Some(Rule::Deny)), Err(ToolsError::InvalidName(_))));
    }

    #[test]
    fn specs_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let reg = ToolRegistry::open(dir.path()).unwrap();
        let w = ws("w");
        let http = ServerSpec::new(ServerTransport::Http { url: "ftp://x".into() });
        assert!(matches!(reg.add_server(&w, "s", http), Err(ToolsError::InvalidSpec(_))));
        let http = ServerSpec::new(ServerTransport::Http { url: "http://127.0.0.1:1/mcp".into() })
            .header("bad header", ValueSource::parse("x"));
        assert!(matches!(reg.add_server(&w, "s", http), Err(ToolsError::InvalidSpec(_))));
        assert!(matches!(ServerTransport::stdio_from_command_line("'unbalanced"), Err(ToolsError::InvalidSpec(_))));
        let ok = ServerSpec::new(ServerTransport::Http { url: "http://127.0.0.1:1/mcp".into() });
        assert!(matches!(reg.add_server(&w, "../x", ok), Err(ToolsError::InvalidName(_))));
    }
}
