//! The team actions that span stores: the facade's business rules for
//! members, tokens and credentials. Every front end (CLI, MCP, API) calls
//! these, so each asks the one permission table and writes one audit trail.

use orbit_vault::{HostBinding, Placement, SecretMeta, SecretValue, VaultError};
use orbit_workspace::permission::{Action, Target};
use orbit_workspace::{
    ItemKind, MemberRemoved, OwnedItem, Principal, TeamError, TeamStore, TokenId, TokenRecord, UserId, WorkspaceId,
    WorkspaceRecord,
};
use serde::Serialize;

use crate::Orbit;

/// Why a team action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TeamActionError {
    /// The team store refused or failed (unknown workspace or member,
    /// permission denied, last owner, ...).
    #[error(transparent)]
    Team(#[from] TeamError),
    /// The vault refused or failed (bad name, binding or value).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// No secret of that name in the workspace.
    #[error("secret {0} not found")]
    SecretNotFound(String),
    /// The tools registry refused or failed (bad name or spec, unknown
    /// server).
    #[error(transparent)]
    Tools(#[from] orbit_tools::ToolsError),
    /// The job store refused or failed (bad name, not a component).
    #[error(transparent)]
    Jobs(#[from] orbit_jobs::JobsError),
    /// Reassignment of a credential whose owner is still a member.
    #[error("{0} is not orphaned: its owner is still a member")]
    NotOrphaned(String),
    /// No MCP server or job of that name in the workspace.
    #[error("{kind} {name} not found")]
    NotFound {
        /// `server` or `job`.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
}

impl TeamActionError {
    /// The stable code: as [`TeamError::code`], `not-found` for an unknown
    /// secret, `invalid-input` or `internal` for the vault.
    pub fn code(&self) -> &'static str {
        match self {
            TeamActionError::Team(e) => e.code(),
            TeamActionError::SecretNotFound(_) | TeamActionError::NotFound { .. } => "not-found",
            TeamActionError::Tools(_) | TeamActionError::Jobs(_) => "invalid-input",
            TeamActionError::NotOrphaned(_) => "permission-denied",
            TeamActionError::Vault(VaultError::Storage(_)) => "internal",
            TeamActionError::Vault(_) => "invalid-input",
        }
    }
}

/// A credential as a workspace's members see it: metadata only, with
/// whether it is orphaned (its owner is no longer a member).
#[derive(Debug, Clone, Serialize)]
pub struct CredentialListing {
    /// Name, bindings, owner, created, last used.
    #[serde(flatten)]
    pub meta: SecretMeta,
    /// `true` when the owner is no longer a member (or it has no owner):
    /// it keeps working until an admin reassigns it.
    pub orphaned: bool,
}

/// What a secret is stored as.
#[derive(Debug)]
pub struct NewSecret {
    /// Its name.
    pub name: String,
    /// Its value (never shown again).
    pub value: SecretValue,
    /// The origins it may be sent to.
    pub hosts: Vec<HostBinding>,
    /// Where it goes in a request.
    pub placement: Placement,
    /// Its owner when the actor is the local operator (default: the
    /// workspace's first owner). A member always owns what it adds.
    pub owner: Option<UserId>,
}

fn audit_best_effort(
    orbit: &Orbit,
    actor: &Principal,
    ws: &WorkspaceId,
    action: &str,
    target: &str,
    detail: Option<String>,
    outcome: &str,
) {
    // A failed audit write of a refusal must not hide the refusal itself.
    if let Err(e) = orbit.team().record_admin(actor, ws, action, target, detail, outcome) {
        tracing::warn!(error = %e, "audit write failed");
    }
}

fn hosts_of(meta: &SecretMeta) -> Vec<String> {
    meta.hosts
        .iter()
        .map(|h| format!("{}://{}:{}{}", h.scheme, h.host, h.port, h.path_prefix.as_deref().unwrap_or("")))
        .collect()
}

impl Orbit {
    /// The workspace, or [`TeamError::WorkspaceNotFound`]: every front end
    /// calls this before acting in a workspace (nothing creates one
    /// implicitly).
    ///
    /// # Errors
    /// [`TeamError::WorkspaceNotFound`]; [`TeamError::Storage`].
    pub fn require_workspace(&self, ws: &WorkspaceId) -> Result<WorkspaceRecord, TeamError> {
        self.team().workspace(ws)?.ok_or_else(|| TeamError::WorkspaceNotFound(ws.clone()))
    }

    /// The items `user` owns in `ws`: credentials (with their hosts), MCP
    /// servers (with their URL or command name) and jobs.
    ///
    /// # Errors
    /// [`VaultError`] when the vault cannot be read; a tools registry or job
    /// store that cannot be read lists nothing from that store (and is
    /// logged), so a member can always be removed.
    pub fn owned_items(&self, ws: &WorkspaceId, user: &UserId) -> Result<Vec<OwnedItem>, VaultError> {
        let mut items: Vec<OwnedItem> = self
            .vault()
            .list(ws)?
            .into_iter()
            .filter(|m| m.owner.as_ref() == Some(user))
            .map(|m| OwnedItem { kind: ItemKind::Credential, hosts: hosts_of(&m), name: m.name })
            .collect();
        match self.tools().registry().list_servers(ws) {
            Ok(servers) => {
                items.extend(servers.into_iter().filter(|s| s.spec.owner.as_ref() == Some(user)).map(|s| OwnedItem {
                    kind: ItemKind::Server,
                    hosts: vec![s.spec.location()],
                    name: s.name,
                }))
            }
            Err(e) => tracing::warn!(error = %e, "listing servers for orphaning"),
        }
        match self.jobs().store().list(ws) {
            Ok(jobs) => {
                items.extend(jobs.into_iter().filter(|j| j.defaults.owner.as_ref() == Some(user)).map(|j| OwnedItem {
                    kind: ItemKind::Job,
                    hosts: Vec::new(),
                    name: j.name,
                }))
            }
            Err(e) => tracing::warn!(error = %e, "listing jobs for orphaning"),
        }
        Ok(items)
    }

    /// Removes a member: revokes their tokens and their agents' tokens,
    /// ends the runs those tokens have in flight (`cancelled`), flags what
    /// they owned as orphaned (it keeps working), and notifies the admins.
    ///
    /// # Errors
    /// As [`TeamStore::remove_member`]; [`TeamActionError::Vault`] when the
    /// vault cannot be read.
    pub fn remove_member(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        user: &UserId,
    ) -> Result<MemberRemoved, TeamActionError> {
        let orphaned = self.owned_items(ws, user)?;
        let removed = self.team().remove_member(actor, ws, user, orphaned)?;
        for id in &removed.revoked_tokens {
            self.cancel_runs_of(*id);
        }
        Ok(removed)
    }

    /// Revokes a token and ends its runs in flight (`cancelled`).
    ///
    /// # Errors
    /// As [`TeamStore::revoke_token`].
    pub fn revoke_token(&self, actor: &Principal, ws: &WorkspaceId, id: TokenId) -> Result<TokenRecord, TeamError> {
        let rec = self.team().revoke_token(actor, ws, id)?;
        self.cancel_runs_of(id);
        Ok(rec)
    }

    fn cancel_runs_of(&self, id: TokenId) {
        self.engine().cancel_token(id);
    }

    /// The workspace's credentials (metadata only), each flagged orphaned
    /// when its owner is no longer a member.
    ///
    /// # Errors
    /// [`TeamActionError::Team`] for an unknown workspace or a principal
    /// the table refuses; [`TeamActionError::Vault`].
    pub fn credentials(&self, actor: &Principal, ws: &WorkspaceId) -> Result<Vec<CredentialListing>, TeamActionError> {
        self.require_workspace(ws)?;
        actor.check(Action::ViewWorkspace, &Target::default()).map_err(TeamError::from)?;
        let members: Vec<UserId> = self.team().members(ws)?.into_iter().map(|m| m.user).collect();
        Ok(self
            .vault()
            .list(ws)?
            .into_iter()
            .map(|meta| {
                let orphaned = meta.owner.as_ref().is_none_or(|o| !members.contains(o));
                CredentialListing { meta, orphaned }
            })
            .collect())
    }

    /// Stores a credential. A new one needs `create-resource`; replacing
    /// one (value or bindings) needs `change-credential`, which only its
    /// owner holds. Audited as `credential.create` or
    /// `credential.value-changed` (never with the value).
    ///
    /// # Errors
    /// [`TeamActionError::Team`] (unknown workspace, owner not a member,
    /// permission denied); [`TeamActionError::Vault`] (bad name, binding or
    /// value).
    pub fn set_credential(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        secret: NewSecret,
    ) -> Result<SecretMeta, TeamActionError> {
        self.require_workspace(ws)?;
        let existing = self.vault().meta(ws, &secret.name)?;
        let action = if existing.is_some() { "credential.value-changed" } else { "credential.create" };
        let refuse = |e: TeamError| {
            audit_best_effort(self, actor, ws, action, &secret.name, None, e.code());
            e
        };
        let owner = match (&existing, actor.user_id()) {
            (Some(old), _) => {
                let owner = old.owner.clone();
                let target = owner.as_ref().map(Target::owned_by).unwrap_or_default();
                actor.check(Action::ChangeCredential, &target).map_err(|e| refuse(e.into()))?;
                match owner {
                    Some(o) => o,
                    None => self.default_owner(ws)?,
                }
            }
            (None, Some(me)) => {
                actor.check(Action::CreateResource, &Target::default()).map_err(|e| refuse(e.into()))?;
                me.clone()
            }
            (None, None) => match secret.owner.clone() {
                Some(o) => o,
                None => self.default_owner(ws)?,
            },
        };
        if self.team().member(ws, &owner)?.is_none() {
            return Err(refuse(TeamError::NotAMember(owner)).into());
        }
        let meta = self.vault().set(ws, &secret.name, secret.value, secret.hosts, secret.placement, &owner)?;
        let detail = Some(format!("owner={owner}; hosts: {}", hosts_of(&meta).join(", ")));
        self.team().record_admin(actor, ws, action, &meta.name, detail, "ok")?;
        Ok(meta)
    }

    /// Deletes a credential: its owner, or an admin. Audited.
    ///
    /// # Errors
    /// [`TeamActionError::SecretNotFound`]; [`TeamActionError::Team`].
    pub fn delete_credential(&self, actor: &Principal, ws: &WorkspaceId, name: &str) -> Result<(), TeamActionError> {
        self.require_workspace(ws)?;
        let meta = self.vault().meta(ws, name)?.ok_or_else(|| TeamActionError::SecretNotFound(name.to_owned()))?;
        let target = meta.owner.as_ref().map(Target::owned_by).unwrap_or_default();
        if let Err(e) = actor.check(Action::DeleteCredential, &target) {
            audit_best_effort(self, actor, ws, "credential.delete", name, None, "permission-denied");
            return Err(TeamError::from(e).into());
        }
        self.vault().remove(ws, name)?;
        self.team().record_admin(actor, ws, "credential.delete", name, None, "ok")?;
        Ok(())
    }

    /// Reassigns an orphaned credential to an active member, optionally
    /// with a new value (admins). Audited as `credential.reassigned`.
    ///
    /// # Errors
    /// [`TeamActionError::SecretNotFound`]; [`TeamError::NotAMember`] when
    /// `to` is not a member; [`TeamActionError::Team`] when the table
    /// refuses.
    pub fn reassign_credential(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        name: &str,
        to: &UserId,
        new_value: Option<SecretValue>,
    ) -> Result<SecretMeta, TeamActionError> {
        self.require_workspace(ws)?;
        if let Err(e) = actor.check(Action::ReassignResource, &Target::default()) {
            audit_best_effort(self, actor, ws, "credential.reassigned", name, None, "permission-denied");
            return Err(TeamError::from(e).into());
        }
        if self.team().member(ws, to)?.is_none() {
            return Err(TeamError::NotAMember(to.clone()).into());
        }
        let (meta, value) =
            self.vault().resolve(ws, name)?.ok_or_else(|| TeamActionError::SecretNotFound(name.to_owned()))?;
        // Only an orphaned credential changes hands: an active member's
        // stays theirs (its value and bindings are theirs alone).
        if let Some(owner) = &meta.owner
            && self.team().member(ws, owner)?.is_some()
        {
            audit_best_effort(self, actor, ws, "credential.reassigned", name, None, "permission-denied");
            return Err(TeamActionError::NotOrphaned(name.to_owned()));
        }
        let value = new_value.unwrap_or(value);
        let meta = self.vault().set(ws, name, value, meta.hosts, meta.placement, to)?;
        self.team().record_admin(actor, ws, "credential.reassigned", name, Some(format!("to {to}")), "ok")?;
        Ok(meta)
    }

    /// Deletes a workspace (owners): its members and tokens (each token
    /// fails at once; runs in flight with them end `cancelled`), its
    /// credentials, its MCP servers and its stored objects.
    ///
    /// # Errors
    /// As [`TeamStore::delete_workspace`]; [`TeamActionError::Vault`].
    pub fn delete_workspace(&self, actor: &Principal, ws: &WorkspaceId) -> Result<(), TeamActionError> {
        self.require_workspace(ws)?;
        let tokens: Vec<TokenId> = self.team().tokens(actor, ws)?.into_iter().map(|t| t.id).collect();
        self.team().delete_workspace(actor, ws)?;
        for id in tokens {
            self.cancel_runs_of(id);
        }
        for meta in self.vault().list(ws)? {
            self.vault().remove(ws, &meta.name)?;
        }
        // Best effort past this point: the workspace is gone from the team
        // store, so nothing can reach what is left.
        if let Ok(servers) = self.tools().registry().list_servers(ws) {
            for s in servers {
                let _ = self.tools().registry().remove_server(ws, &s.name);
            }
        }
        loop {
            let Ok((objects, _)) = self.blobs().list(ws, "", None, 1_000) else { break };
            if objects.is_empty() {
                break;
            }
            for o in objects {
                let _ = self.blobs().delete(ws, &o.key);
            }
        }
        Ok(())
    }

    fn default_owner(&self, ws: &WorkspaceId) -> Result<UserId, TeamError> {
        self.team()
            .members(ws)?
            .into_iter()
            .find(|m| m.role == orbit_workspace::Role::Owner)
            .map(|m| m.user)
            .ok_or_else(|| TeamError::WorkspaceNotFound(ws.clone()))
    }
}
