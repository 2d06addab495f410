//! MCP servers, tool policy and jobs as team resources: each change asks
//! the permission table (installing is `create-resource`; editing or
//! removing someone's server or job is `edit-resource`, theirs or any for
//! admins; disabling is `disable-server`; the tool policy is
//! `change-tool-policy`), records an owner, and is audited.

use orbit_jobs::{JobDefaults, JobSpec};
use orbit_tools::{Rule, ServerEntry, ServerSpec};
use orbit_workspace::permission::{Action, Target};
use orbit_workspace::{Principal, TeamError, TeamStore, UserId, WorkspaceId};

use crate::{Orbit, TeamActionError};

impl Orbit {
    /// Asks the table for `action` on `target`; a refusal is audited as
    /// `audit_action` on `name` and returned.
    fn permit(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        action: Action,
        target: &Target<'_>,
        audit_action: &str,
        name: &str,
    ) -> Result<(), TeamActionError> {
        self.require_workspace(ws)?;
        if let Err(denied) = actor.check(action, target) {
            if let Err(e) = self.team().record_admin(actor, ws, audit_action, name, None, "permission-denied") {
                tracing::warn!(error = %e, "audit write failed");
            }
            return Err(TeamError::from(denied).into());
        }
        Ok(())
    }

    /// Who owns a new resource: the acting member, or (for the local
    /// operator and embedders) `owner`, else the workspace's first owner.
    fn new_owner(&self, actor: &Principal, ws: &WorkspaceId, owner: Option<UserId>) -> Result<UserId, TeamError> {
        let user = match (actor.user_id(), owner) {
            (Some(me), _) => me.clone(),
            (None, Some(o)) => o,
            (None, None) => self
                .team()
                .members(ws)?
                .into_iter()
                .find(|m| m.role == orbit_workspace::Role::Owner)
                .map(|m| m.user)
                .ok_or_else(|| TeamError::WorkspaceNotFound(ws.clone()))?,
        };
        if self.team().member(ws, &user)?.is_none() {
            return Err(TeamError::NotAMember(user));
        }
        Ok(user)
    }

    fn server_owner(&self, ws: &WorkspaceId, name: &str) -> Result<Option<UserId>, TeamActionError> {
        let entry = self.tools().registry().server(ws, name)?;
        let entry = entry.ok_or_else(|| TeamActionError::NotFound { kind: "server", name: name.to_owned() })?;
        Ok(entry.spec.owner)
    }

    /// Installs (or reinstalls) an MCP server owned by `owner` (see
    /// [`Orbit::set_credential`] for who owns what). Reinstalling an
    /// existing server is an edit of it. Audited as `server.install`.
    ///
    /// # Errors
    /// [`TeamActionError::Team`] (unknown workspace, owner not a member,
    /// permission denied); [`TeamActionError::Tools`] (bad name or spec).
    pub fn install_server(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        name: &str,
        mut spec: ServerSpec,
        owner: Option<UserId>,
    ) -> Result<ServerEntry, TeamActionError> {
        let existing = self.tools().registry().server(ws, name)?;
        match &existing {
            Some(old) => {
                let target = old.spec.owner.as_ref().map(Target::owned_by).unwrap_or_default();
                self.permit(actor, ws, Action::EditResource, &target, "server.install", name)?;
            }
            None => self.permit(actor, ws, Action::CreateResource, &Target::default(), "server.install", name)?,
        }
        if matches!(spec.transport, orbit_tools::ServerTransport::Stdio { .. }) {
            // A command runs as the host's user: only the operator installs one.
            self.permit(actor, ws, Action::InstallCommandServer, &Target::default(), "server.install", name)?;
        }
        // Reinstalling keeps the owner it has.
        let owner = match existing.and_then(|e| e.spec.owner) {
            Some(o) if self.team().member(ws, &o)?.is_some() => o,
            _ => self.new_owner(actor, ws, owner)?,
        };
        spec.owner = Some(owner.clone());
        let location = spec.location();
        let entry = self.tools().registry().add_server(ws, name, spec)?;
        let detail = Some(format!("owner={owner}; {location}"));
        self.team().record_admin(actor, ws, "server.install", name, detail, "ok")?;
        Ok(entry)
    }

    /// Removes an MCP server: its owner, or an admin. Audited.
    ///
    /// # Errors
    /// [`TeamActionError::NotFound`]; [`TeamActionError::Team`].
    pub fn remove_server(&self, actor: &Principal, ws: &WorkspaceId, name: &str) -> Result<(), TeamActionError> {
        self.require_workspace(ws)?;
        let owner = self.server_owner(ws, name)?;
        let target = owner.as_ref().map(Target::owned_by).unwrap_or_default();
        self.permit(actor, ws, Action::EditResource, &target, "server.remove", name)?;
        self.tools().registry().remove_server(ws, name)?;
        self.tools().disconnect(ws, name);
        self.team().record_admin(actor, ws, "server.remove", name, None, "ok")?;
        Ok(())
    }

    /// Connects to server `name` and lists its tools again, keeping the new
    /// list (`create-resource`: members may, as they may enable one).
    /// Audited as `server.refresh`.
    ///
    /// # Errors
    /// [`TeamActionError::NotFound`]; [`TeamActionError::Team`];
    /// [`TeamActionError::Tools`] (disabled, unreachable).
    pub async fn refresh_server(&self, actor: &Principal, ws: &WorkspaceId, name: &str) -> Result<(), TeamActionError> {
        self.require_workspace(ws)?;
        self.server_owner(ws, name)?;
        self.permit(actor, ws, Action::CreateResource, &Target::default(), "server.refresh", name)?;
        let listed = self.tools().refresh(ws, name).await;
        let outcome = if listed.is_ok() { "ok" } else { "unavailable" };
        self.team().record_admin(actor, ws, "server.refresh", name, None, outcome)?;
        listed?;
        Ok(())
    }

    /// Enables a server (`create-resource`: members may) or disables it
    /// (`disable-server`: admins). Audited.
    ///
    /// # Errors
    /// [`TeamActionError::NotFound`]; [`TeamActionError::Team`].
    pub fn set_server_enabled(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        name: &str,
        enabled: bool,
    ) -> Result<(), TeamActionError> {
        self.require_workspace(ws)?;
        self.server_owner(ws, name)?;
        let (action, audit) =
            if enabled { (Action::CreateResource, "server.enable") } else { (Action::DisableServer, "server.disable") };
        self.permit(actor, ws, action, &Target::default(), audit, name)?;
        self.tools().registry().set_enabled(ws, name, enabled)?;
        if !enabled {
            self.tools().disconnect(ws, name);
        }
        self.team().record_admin(actor, ws, audit, name, None, "ok")?;
        Ok(())
    }

    /// Sets (or with `None` clears) the allow/deny rule on `SERVER` or
    /// `SERVER/TOOL` (`change-tool-policy`). Audited as `policy.rule`.
    ///
    /// # Errors
    /// [`TeamActionError::Team`]; [`TeamActionError::Tools`] (bad target).
    pub fn set_tool_rule(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        target: &str,
        rule: Option<Rule>,
    ) -> Result<(), TeamActionError> {
        self.permit(actor, ws, Action::ChangeToolPolicy, &Target::default(), "policy.rule", target)?;
        self.tools().registry().set_rule(ws, target, rule)?;
        let detail = Some(match rule {
            Some(Rule::Allow) => "allow".to_owned(),
            Some(Rule::Deny) => "deny".to_owned(),
            _ => "cleared".to_owned(),
        });
        self.team().record_admin(actor, ws, "policy.rule", target, detail, "ok")?;
        Ok(())
    }

    /// Opens (or closes) `SERVER` or `SERVER/TOOL` to read-only principals
    /// beyond tools annotated `readOnlyHint` (`change-tool-policy`).
    /// Audited as `policy.read-only`.
    ///
    /// # Errors
    /// [`TeamActionError::Team`]; [`TeamActionError::Tools`].
    pub fn set_tool_read_only_allow(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        target: &str,
        open: bool,
    ) -> Result<(), TeamActionError> {
        self.permit(actor, ws, Action::ChangeToolPolicy, &Target::default(), "policy.read-only", target)?;
        self.tools().registry().set_read_only_allow(ws, target, open)?;
        let detail = Some(if open { "opened to read-only" } else { "closed to read-only" }.to_owned());
        self.team().record_admin(actor, ws, "policy.read-only", target, detail, "ok")?;
        Ok(())
    }

    /// Registers (or replaces) a job owned by `owner`, as
    /// [`Orbit::install_server`] does for servers. Audited as `job.register`.
    ///
    /// # Errors
    /// [`TeamActionError::Team`]; [`TeamActionError::Jobs`] (bad name, not a
    /// component).
    pub fn register_job(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        name: &str,
        wasm: &[u8],
        mut defaults: JobDefaults,
        owner: Option<UserId>,
    ) -> Result<JobSpec, TeamActionError> {
        let existing = self.jobs().store().list(ws)?.into_iter().find(|j| j.name == name);
        match &existing {
            Some(old) => {
                let target = old.defaults.owner.as_ref().map(Target::owned_by).unwrap_or_default();
                self.permit(actor, ws, Action::EditResource, &target, "job.register", name)?;
            }
            None => self.permit(actor, ws, Action::CreateResource, &Target::default(), "job.register", name)?,
        }
        // Re-registering keeps the owner it has.
        let owner = match existing.and_then(|j| j.defaults.owner) {
            Some(o) if self.team().member(ws, &o)?.is_some() => o,
            _ => self.new_owner(actor, ws, owner)?,
        };
        defaults.owner = Some(owner.clone());
        let spec = self.jobs().register(ws, name, wasm, defaults)?;
        let detail = Some(format!("owner={owner}; sha256 {}", spec.digest));
        self.team().record_admin(actor, ws, "job.register", name, detail, "ok")?;
        Ok(spec)
    }

    /// Removes a job: its owner, or an admin. Audited.
    ///
    /// # Errors
    /// [`TeamActionError::NotFound`]; [`TeamActionError::Team`].
    pub fn remove_job(&self, actor: &Principal, ws: &WorkspaceId, name: &str) -> Result<(), TeamActionError> {
        self.require_workspace(ws)?;
        let job = self.jobs().store().list(ws)?.into_iter().find(|j| j.name == name);
        let job = job.ok_or_else(|| TeamActionError::NotFound { kind: "job", name: name.to_owned() })?;
        let target = job.defaults.owner.as_ref().map(Target::owned_by).unwrap_or_default();
        self.permit(actor, ws, Action::EditResource, &target, "job.remove", name)?;
        self.jobs().store().remove(ws, name)?;
        self.team().record_admin(actor, ws, "job.remove", name, None, "ok")?;
        Ok(())
    }
}
