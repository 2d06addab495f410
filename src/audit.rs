//! The facade's side of the audit trail: a secret resolver that records
//! every use of a credential in the team store, and the check that keeps a
//! revoked token's queued jobs from starting.

use std::sync::Arc;

use orbit_vault::{SecretMeta, SecretResolver, SecretUse, SecretValue, Vault, VaultError};
use orbit_workspace::{AuditEvent, AuditKind, AuditLog, Principal, RedbTeamStore, TeamStore, WorkspaceId};

/// The vault as the primitives' [`SecretResolver`], appending an
/// [`AuditKind::CredentialUse`] event (secret name, origin, run id, the
/// principal; never the value) to the team store's audit trail at every
/// [`SecretResolver::record_use`], besides the vault's last-use time.
pub(crate) struct AuditingResolver {
    pub(crate) vault: Arc<Vault>,
    pub(crate) audit: Arc<RedbTeamStore>,
}

impl SecretResolver for AuditingResolver {
    fn resolve(&self, ws: &WorkspaceId, name: &str) -> Result<Option<(SecretMeta, SecretValue)>, VaultError> {
        self.vault.resolve(ws, name)
    }

    fn meta(&self, ws: &WorkspaceId, name: &str) -> Result<Option<SecretMeta>, VaultError> {
        self.vault.meta(ws, name)
    }

    fn mark_used(&self, ws: &WorkspaceId, name: &str, at_ms: u64) -> Result<(), VaultError> {
        self.vault.mark_used(ws, name, at_ms)
    }

    /// Records the last-use time in the vault, then appends the audit
    /// event (durably); both are attempted, the first failure returned.
    fn record_use(&self, ws: &WorkspaceId, name: &str, secret_use: &SecretUse) -> Result<(), VaultError> {
        let marked = self.vault.mark_used(ws, name, secret_use.at_ms);
        let event = AuditEvent::new(
            ws.clone(),
            &secret_use.principal,
            secret_use.at_ms,
            AuditKind::CredentialUse {
                secret: name.to_owned(),
                run_id: secret_use.run_id.clone(),
                origin: secret_use.origin.clone(),
            },
        );
        let appended = self.audit.append(event).map_err(|e| VaultError::Audit(e.to_string()));
        marked.and(appended)
    }
}

/// Whether `principal` may still act in `ws` for a queued job.
///
/// - The host, the local operator and an embedding program (no member)
///   always may.
/// - A member must still be a member, with a current role no lower than
///   the one the job was enqueued with (a demotion refuses the job rather
///   than run it with the old role).
/// - A token must still be active ([`TeamStore::token_active`]).
///
/// A store that cannot be read refuses.
pub(crate) fn principal_still_valid(team: &RedbTeamStore, ws: &WorkspaceId, principal: &Principal) -> bool {
    let refuse = |e: &dyn std::fmt::Display| {
        tracing::warn!(workspace = ws.as_str(), error = %e, "checking a queued job's principal failed; the job is refused");
        false
    };
    let Some(user) = principal.user_id() else { return true };
    match team.member(ws, user) {
        Ok(Some(m)) if m.role >= principal.role => {}
        Ok(_) => return false,
        Err(e) => return refuse(&e),
    }
    let Some(token) = principal.token else { return true };
    match team.token_active(ws, token) {
        Ok(active) => active,
        Err(e) => refuse(&e),
    }
}
