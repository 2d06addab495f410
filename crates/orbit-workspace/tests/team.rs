//! The team store on a real redb file: the permission table walked cell by
//! cell, tokens (issue, authenticate, expiry with an injected clock,
//! revocation under load), members, ownership, notifications and audit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use orbit_workspace::permission::{self, Action, Grant, PERMISSIONS, Target};
use orbit_workspace::{
    AuditKind, AuditLog, AuditQuery, AuthFailure, ItemKind, ManualClock, OwnedItem, Principal, RedbTeamStore, Role,
    TeamError, TeamStore, TokenRequest, UserId, WorkspaceId,
};

fn u(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn w(s: &str) -> WorkspaceId {
    WorkspaceId::new(s).unwrap()
}

const T0: u64 = 1_800_000_000_000;

fn open(dir: &tempfile::TempDir) -> (RedbTeamStore, ManualClock) {
    let clock = ManualClock::at(T0);
    let store =
        RedbTeamStore::open_with(&dir.path().join("team.redb"), Arc::new(clock.clone()), 90 * 86_400_000).unwrap();
    (store, clock)
}

fn req(user: &str, role: Option<Role>) -> TokenRequest {
    TokenRequest { user: u(user), role, agent: None, name: None, expires_in_ms: None }
}

/// A workspace `ws` owned by `owner`, with `admin`, `member` and `viewer`
/// (read-only) members, built by the local operator.
fn team(store: &RedbTeamStore, ws: &str) -> WorkspaceId {
    let op = Principal::local_operator();
    let ws = w(ws);
    store.create_workspace(&op, &ws, &u("owner"), Some("Team")).unwrap();
    store.add_member(&op, &ws, &u("admin"), Role::Admin, None).unwrap();
    store.add_member(&op, &ws, &u("member"), Role::Member, None).unwrap();
    store.add_member(&op, &ws, &u("viewer"), Role::ReadOnly, None).unwrap();
    ws
}

fn as_role(role: Role) -> Principal {
    let user = match role {
        Role::Owner => "owner",
        Role::Admin => "admin",
        Role::Member => "member",
        Role::ReadOnly => "viewer",
    };
    Principal::user(u(user), role)
}

/// The issue's table, written out independently of `PERMISSIONS`: a typo
/// in either shows up here. Columns: read-only, member, admin, owner.
const SPEC: &[(&str, [&str; 4])] = &[
    ("view-workspace", ["yes", "yes", "yes", "yes"]),
    ("view-runs", ["own", "yes", "yes", "yes"]),
    ("run-component", ["yes", "yes", "yes", "yes"]),
    ("cancel-run", ["own", "own", "yes", "yes"]),
    ("enqueue-job", ["no", "yes", "yes", "yes"]),
    ("call-tool", ["read-only-tools", "yes", "yes", "yes"]),
    ("write-data", ["no", "yes", "yes", "yes"]),
    ("fetch-unsafe-method", ["no", "yes", "yes", "yes"]),
    ("create-resource", ["no", "yes", "yes", "yes"]),
    ("install-command-server", ["no", "no", "no", "operator"]),
    ("edit-resource", ["no", "own", "yes", "yes"]),
    ("delete-credential", ["no", "own", "yes", "yes"]),
    ("change-credential", ["no", "own", "own", "own"]),
    ("disable-server", ["no", "no", "yes", "yes"]),
    ("change-tool-policy", ["no", "no", "yes", "yes"]),
    ("reassign-resource", ["no", "no", "yes", "yes"]),
    ("view-audit", ["no", "no", "yes", "yes"]),
    ("manage-members", ["no", "no", "not-owners", "yes"]),
    ("issue-token", ["own", "own", "own-or-below", "own-or-below"]),
    ("list-tokens", ["own", "own", "yes", "yes"]),
    ("revoke-token", ["own", "own", "not-owners", "yes"]),
    ("leave-workspace", ["own", "own", "own", "own"]),
    ("transfer-ownership", ["no", "no", "no", "yes"]),
    ("delete-workspace", ["no", "no", "no", "yes"]),
    ("read-credential-value", ["no", "no", "no", "no"]),
];

#[test]
fn the_table_matches_the_spec_cell_by_cell() {
    assert_eq!(PERMISSIONS.len(), SPEC.len(), "one row per action");
    for (rule, (name, cells)) in PERMISSIONS.iter().zip(SPEC) {
        assert_eq!(rule.name, *name);
        for (i, role) in Role::ALL.into_iter().enumerate() {
            let want = match cells[i] {
                "yes" => Grant::Yes,
                "no" => Grant::No,
                "own" => Grant::OwnOnly,
                "not-owners" => Grant::NotOwners,
                "own-or-below" => Grant::OwnOrBelow,
                "read-only-tools" => Grant::ReadOnlyTools,
                "operator" => Grant::OperatorOnly,
                other => panic!("bad spec cell {other}"),
            };
            assert_eq!(rule.grants[i], want, "{name} for {role}");
        }
    }
}

/// Every cell, decided through `Principal::check` on targets that make
/// each condition hold and fail.
#[test]
fn every_cell_decides_as_its_grant_says() {
    let me = u("me");
    let other = u("other");
    for rule in PERMISSIONS {
        for role in Role::ALL {
            let p = Principal::user(me.clone(), role);
            let grant = rule.grants[role as usize];
            let own = p.check(rule.action, &Target::member(&me, Role::Member)).is_ok();
            let others = p.check(rule.action, &Target::member(&other, Role::Member)).is_ok();
            let an_owner = p.check(rule.action, &Target::member(&other, Role::Owner)).is_ok();
            let making_owner = p.check(rule.action, &Target::member(&other, Role::Member).giving(Role::Owner)).is_ok();
            let hinted = p.check(rule.action, &Target::tool(true, false)).is_ok();
            let unhinted = p.check(rule.action, &Target::tool(false, false)).is_ok();
            let opened = p.check(rule.action, &Target::tool(false, true)).is_ok();
            let got = (own, others, an_owner, making_owner, hinted, unhinted, opened);
            let want = match grant {
                Grant::Yes => (true, true, true, true, true, true, true),
                Grant::No => (false, false, false, false, false, false, false),
                Grant::OwnOnly => (true, false, false, false, false, false, false),
                Grant::NotOwners => (true, true, false, false, true, true, true),
                // Other members are `Member`: below an admin or an owner.
                Grant::OwnOrBelow => (true, true, false, false, false, false, false),
                Grant::ReadOnlyTools => (false, false, false, false, true, false, true),
                Grant::OperatorOnly => (false, false, false, false, false, false, false),
            };
            assert_eq!(got, want, "{} for {role} ({grant:?})", rule.name);
            // Offered to the role exactly when some target allows it.
            let any = [own, others, an_owner, making_owner, hinted, unhinted, opened].contains(&true);
            assert_eq!(permission::offered(role, rule.action), any, "{} offered to {role}", rule.name);
            // One's own, when one is an owner: only the own-or grant.
            let own_as_owner = p.check(rule.action, &Target::member(&me, Role::Owner)).is_ok();
            assert_eq!(
                own_as_owner,
                matches!(grant, Grant::Yes | Grant::OwnOnly | Grant::OwnOrBelow),
                "{} for {role} on one's own, as an owner",
                rule.name
            );
            assert_eq!(p.may(rule.action), grant == Grant::Yes);
        }
    }
    // Nobody reads a credential's value, the local operator included.
    assert!(Principal::local_operator().check(Action::ReadCredentialValue, &Target::default()).is_err());
    // Only the operator installs a command server, whatever a user's role.
    assert!(Principal::local_operator().check(Action::InstallCommandServer, &Target::default()).is_ok());
    assert!(Principal::embedded().check(Action::InstallCommandServer, &Target::default()).is_ok());
}

/// The store-enforced actions, through the store's own methods, for each
/// role: what the table allows succeeds, what it refuses changes nothing.
#[test]
fn store_actions_follow_the_table_for_every_role() {
    for role in Role::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(&dir);
        let ws = team(&store, "t");
        let p = as_role(role);
        let op = Principal::local_operator();
        let allowed = |a: Action, t: &Target| permission::decide(role, p.user_id(), a, t).is_ok();

        // Add a member (member role): manage-members.
        let r = store.add_member(&p, &ws, &u("newbie"), Role::Member, None);
        assert_eq!(r.is_ok(), allowed(Action::ManageMembers, &Target::default().giving(Role::Member)), "{role} add");
        assert_eq!(store.member(&ws, &u("newbie")).unwrap().is_some(), r.is_ok());

        // Make someone an owner: only owners.
        let r = store.set_role(&p, &ws, &u("member"), Role::Owner);
        assert_eq!(r.is_ok(), role == Role::Owner, "{role} promote to owner");
        if r.is_ok() {
            store.set_role(&op, &ws, &u("member"), Role::Member).unwrap();
        }
        assert_eq!(store.member(&ws, &u("member")).unwrap().unwrap().role, Role::Member);

        // Remove the owner: never an admin; the owner may remove another
        // owner but not the last.
        let r = store.remove_member(&p, &ws, &u("owner"), vec![]);
        if role == Role::Owner {
            assert_eq!(r.unwrap_err(), TeamError::LastOwner, "self-removal of the last owner");
        } else {
            assert!(matches!(r, Err(TeamError::Denied(_))), "{role} remove owner: {r:?}");
        }

        // Tokens: everyone issues and revokes their own, lists their own.
        let mine = store.issue_token(&p, &ws, req(p.user_id().unwrap().as_str(), None)).unwrap();
        let someone_else = if role == Role::ReadOnly { "member" } else { "viewer" };
        let theirs = store.issue_token(&op, &ws, req(someone_else, None)).unwrap();
        let listed: Vec<_> = store.tokens(&p, &ws).unwrap().into_iter().map(|t| t.id).collect();
        assert!(listed.contains(&mine.record.id));
        assert_eq!(listed.contains(&theirs.record.id), allowed(Action::ListTokens, &Target::default()), "{role} list");
        let r = store.revoke_token(&p, &ws, theirs.record.id);
        assert_eq!(r.is_ok(), matches!(role, Role::Admin | Role::Owner), "{role} revoke another's");
        assert_eq!(store.authenticate(theirs.secret.expose()).is_ok(), r.is_err());
        store.revoke_token(&p, &ws, mine.record.id).unwrap();
        // A token for someone else: admins and owners, for a non-owner
        // (an invited member's first token); never members (a token acts
        // as its member).
        let r = store.issue_token(&p, &ws, req(someone_else, None));
        assert_eq!(r.is_ok(), matches!(role, Role::Admin | Role::Owner), "{role} issue for another: {r:?}");
        if let Ok(t) = r {
            assert!(
                t.record.created_by.contains(p.user_id().unwrap().as_str()),
                "who issued it is kept: {}",
                t.record.created_by
            );
        }
        let r = store.issue_token(&p, &ws, req("owner", None));
        assert_eq!(
            r.is_ok(),
            role == Role::Owner && p.user_id().unwrap().as_str() == "owner",
            "{role} issue for an owner: {r:?}"
        );
        assert!(store.issue_token(&op, &ws, req(someone_else, None)).is_ok());
        // Never a peer's: an admin does not act as another admin.
        store.add_member(&op, &ws, &u("admin2"), Role::Admin, None).unwrap();
        let r = store.issue_token(&p, &ws, req("admin2", None));
        assert_eq!(r.is_ok(), role == Role::Owner, "{role} issue for an admin: {r:?}");

        // Notifications and audit: admins and owners.
        assert_eq!(store.notifications(&p, &ws).is_ok(), matches!(role, Role::Admin | Role::Owner));

        // Delete the workspace: owners only.
        let r = store.delete_workspace(&p, &ws);
        assert_eq!(r.is_ok(), role == Role::Owner, "{role} delete");
        assert_eq!(store.workspace(&ws).unwrap().is_none(), role == Role::Owner);
    }
}

#[test]
fn tokens_authenticate_until_revoked_or_expired() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open(&dir);
    let ws = team(&store, "acme");
    let op = Principal::local_operator();

    let issued = store
        .issue_token(
            &op,
            &ws,
            TokenRequest { expires_in_ms: Some(14 * 86_400_000), ..req("member", Some(Role::ReadOnly)) },
        )
        .unwrap();
    let text = issued.secret.expose().to_owned();
    let auth = store.authenticate(&text).unwrap();
    assert_eq!(auth.workspace, ws);
    assert_eq!(auth.principal.role, Role::ReadOnly);
    assert_eq!(auth.principal.user_id(), Some(&u("member")));
    assert_eq!(auth.principal.token, Some(issued.record.id));
    assert_eq!(auth.token.last_used_ms, Some(T0));

    clock.advance(14 * 86_400_000 - 1);
    assert!(store.authenticate(&text).is_ok());
    clock.advance(1);
    assert_eq!(store.authenticate(&text).unwrap_err(), TeamError::Unauthenticated(AuthFailure::Expired));

    let other = store.issue_token(&op, &ws, req("member", None)).unwrap();
    store.revoke_token(&op, &ws, other.record.id).unwrap();
    assert_eq!(
        store.authenticate(other.secret.expose()).unwrap_err(),
        TeamError::Unauthenticated(AuthFailure::Revoked)
    );

    // Unknown and malformed tokens.
    let unknown = orbit_workspace::TokenSecret::generate().unwrap();
    assert_eq!(store.authenticate(unknown.expose()).unwrap_err(), TeamError::Unauthenticated(AuthFailure::Unknown));
    assert_eq!(store.authenticate("Bearer x").unwrap_err(), TeamError::Unauthenticated(AuthFailure::Malformed));
    assert_eq!(store.authenticate("").unwrap_err(), TeamError::Unauthenticated(AuthFailure::Missing));
}

#[test]
fn a_token_never_exceeds_its_member_and_follows_demotion() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let ws = team(&store, "acme");
    let op = Principal::local_operator();
    let err = store.issue_token(&op, &ws, req("member", Some(Role::Admin))).unwrap_err();
    assert_eq!(err, TeamError::RoleAboveMember { requested: Role::Admin, member: Role::Member });
    let t = store.issue_token(&op, &ws, req("admin", None)).unwrap();
    assert_eq!(store.authenticate(t.secret.expose()).unwrap().principal.role, Role::Admin);
    store.set_role(&op, &ws, &u("admin"), Role::ReadOnly).unwrap();
    assert_eq!(store.authenticate(t.secret.expose()).unwrap().principal.role, Role::ReadOnly);
    // Unknown user, unknown workspace.
    assert_eq!(store.issue_token(&op, &ws, req("ghost", None)).unwrap_err(), TeamError::NotAMember(u("ghost")));
    assert_eq!(
        store.issue_token(&op, &w("nope"), req("member", None)).unwrap_err(),
        TeamError::WorkspaceNotFound(w("nope"))
    );
}

#[test]
fn the_same_member_in_two_workspaces_has_a_token_per_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let a = team(&store, "a");
    let op = Principal::local_operator();
    let b = w("b");
    store.create_workspace(&op, &b, &u("member"), None).unwrap();
    let ta = store.issue_token(&op, &a, req("member", None)).unwrap();
    let tb = store.issue_token(&op, &b, req("member", None)).unwrap();
    assert_eq!(store.authenticate(ta.secret.expose()).unwrap().workspace, a);
    let auth_b = store.authenticate(tb.secret.expose()).unwrap();
    assert_eq!(auth_b.workspace, b);
    assert_eq!(auth_b.principal.role, Role::Owner);
    // A's admin cannot revoke B's token: it is not found in A.
    assert_eq!(store.revoke_token(&op, &a, tb.record.id).unwrap_err(), TeamError::TokenNotFound(tb.record.id));
    assert!(store.authenticate(tb.secret.expose()).is_ok());
    let roles: Vec<_> = store.workspaces_of(&u("member")).unwrap().into_iter().map(|(w, r)| (w.id, r)).collect();
    assert_eq!(roles, vec![(a, Role::Member), (b, Role::Owner)]);
}

#[test]
fn revocation_is_instant_under_a_loop_of_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let ws = team(&store, "acme");
    let op = Principal::local_operator();
    let t = store.issue_token(&op, &ws, req("member", None)).unwrap();
    let text = t.secret.expose().to_owned();
    let revoked = Arc::new(AtomicBool::new(false));
    let (ok_before, ok_after) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (store, text, revoked) = (store.clone(), text.clone(), revoked.clone());
            let (ok_before, ok_after) = (ok_before.clone(), ok_after.clone());
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    // Read the flag before the call: a call that began after
                    // revoke returned must fail.
                    let after = revoked.load(Ordering::SeqCst);
                    match store.authenticate(&text) {
                        Ok(_) if after => ok_after.fetch_add(1, Ordering::SeqCst),
                        Ok(_) => ok_before.fetch_add(1, Ordering::SeqCst),
                        Err(_) if after => return,
                        Err(_) => 0,
                    };
                }
            })
        })
        .collect();
    while ok_before.load(Ordering::SeqCst) < 100 {
        std::thread::yield_now();
    }
    store.revoke_token(&op, &ws, t.record.id).unwrap();
    revoked.store(true, Ordering::SeqCst);
    for h in workers {
        h.join().unwrap();
    }
    assert!(ok_before.load(Ordering::SeqCst) >= 100);
    assert_eq!(ok_after.load(Ordering::SeqCst), 0, "a call succeeded after revoke returned");
}

#[test]
fn removing_a_member_revokes_their_tokens_and_notifies_admins() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let ws = team(&store, "acme");
    let op = Principal::local_operator();
    let own = store.issue_token(&op, &ws, req("member", None)).unwrap();
    let agent = store
        .issue_token(&op, &ws, TokenRequest { agent: Some("bot".parse().unwrap()), ..req("member", None) })
        .unwrap();
    let keep = store.issue_token(&op, &ws, req("viewer", None)).unwrap();
    let orphaned = vec![OwnedItem {
        kind: ItemKind::Credential,
        name: "GH".into(),
        hosts: vec!["https://api.github.com:443".into()],
    }];
    let admin = as_role(Role::Admin);
    let removed = store.remove_member(&admin, &ws, &u("member"), orphaned.clone()).unwrap();
    assert_eq!(removed.revoked_tokens.len(), 2);
    for t in [&own, &agent] {
        assert_eq!(
            store.authenticate(t.secret.expose()).unwrap_err(),
            TeamError::Unauthenticated(AuthFailure::Revoked)
        );
    }
    assert!(store.authenticate(keep.secret.expose()).is_ok());
    let notes = store.notifications(&admin, &ws).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].items, orphaned);
    assert!(notes[0].message.contains("member"));
    let audit = store.query(&AuditQuery::new(ws.clone())).unwrap();
    let actions: Vec<_> = audit
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            AuditKind::Admin { action, .. } => Some(action.as_str()),
            _ => None,
        })
        .collect();
    assert!(actions.contains(&"member.remove") && actions.contains(&"credential.orphaned"), "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "token.revoke").count(), 2);
    // The removed member is unknown now.
    assert_eq!(store.set_role(&op, &ws, &u("member"), Role::Admin).unwrap_err(), TeamError::NotAMember(u("member")));
}

#[test]
fn the_last_owner_cannot_leave_be_removed_or_demoted() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let ws = team(&store, "acme");
    let owner = as_role(Role::Owner);
    assert_eq!(store.set_role(&owner, &ws, &u("owner"), Role::Admin).unwrap_err(), TeamError::LastOwner);
    assert_eq!(store.remove_member(&owner, &ws, &u("owner"), vec![]).unwrap_err(), TeamError::LastOwner);
    // Transfer: make another owner, then step down.
    store.set_role(&owner, &ws, &u("admin"), Role::Owner).unwrap();
    store.set_role(&owner, &ws, &u("owner"), Role::Admin).unwrap();
    assert_eq!(store.member(&ws, &u("owner")).unwrap().unwrap().role, Role::Admin);
    // An admin cannot promote to owner, and the refusal is audited.
    let admin = Principal::user(u("owner"), Role::Admin);
    assert!(matches!(store.set_role(&admin, &ws, &u("member"), Role::Owner), Err(TeamError::Denied(_))));
    let page = store.query(&AuditQuery { outcome: Some("permission-denied".into()), ..AuditQuery::new(ws) }).unwrap();
    assert!(page.events.iter().any(
        |e| matches!(&e.kind, AuditKind::Admin { action, target, .. } if action == "member.role" && target == "member")
    ));
}

#[test]
fn the_second_member_makes_a_team_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let op = Principal::local_operator();
    let ws = w("solo");
    store.create_workspace(&op, &ws, &u("ada"), None).unwrap();
    assert!(store.add_member(&op, &ws, &u("bob"), Role::Member, None).unwrap().became_team);
    assert!(!store.add_member(&op, &ws, &u("cy"), Role::Member, None).unwrap().became_team);
    assert_eq!(
        store.add_member(&op, &ws, &u("cy"), Role::Member, None).unwrap_err(),
        TeamError::AlreadyMember(u("cy"))
    );
    assert_eq!(store.create_workspace(&op, &ws, &u("ada"), None).unwrap_err(), TeamError::WorkspaceExists(ws));
}

#[test]
fn audit_filters_pages_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open(&dir);
    let ws = team(&store, "acme");
    let member = as_role(Role::Member);
    for i in 0..25u64 {
        clock.advance(1_000);
        let ev = orbit_workspace::AuditEvent::new(
            ws.clone(),
            &member,
            clock.now_ms_for_test(),
            AuditKind::ToolCall {
                server: if i % 2 == 0 { "time".into() } else { "everything".into() },
                tool: "echo".into(),
                latency_us: 100 + i,
                outcome: if i % 5 == 0 { "tool-error".into() } else { "ok".into() },
                run_id: None,
            },
        );
        store.append(ev).unwrap();
    }
    let q = AuditQuery { server: Some("time".into()), limit: 5, ..AuditQuery::new(ws.clone()) };
    let p1 = store.query(&q).unwrap();
    assert_eq!(p1.events.len(), 5);
    assert!(p1.events.windows(2).all(|w| w[0].at_ms > w[1].at_ms), "newest first");
    let p2 = store.query(&AuditQuery { before: p1.next_cursor, ..q.clone() }).unwrap();
    let p3 = store.query(&AuditQuery { before: p2.next_cursor, ..q.clone() }).unwrap();
    assert_eq!((p2.events.len(), p3.events.len(), p3.next_cursor), (5, 3, None));
    let errors =
        store.query(&AuditQuery { outcome: Some("tool-error".into()), ..AuditQuery::new(ws.clone()) }).unwrap();
    assert_eq!(errors.events.len(), 5);
    let by_user = store.query(&AuditQuery { user: Some(u("member")), ..AuditQuery::new(ws.clone()) }).unwrap();
    assert_eq!(by_user.events.len(), 25);
    let since = store.query(&AuditQuery { since_ms: Some(T0 + 21_000), ..AuditQuery::new(ws.clone()) }).unwrap();
    assert_eq!(since.events.len(), 5);
    // Retention: events older than the cut are pruned.
    assert_eq!(store.prune(T0 + 10_500).unwrap(), 10 + 4, "10 tool calls and the 4 setup events");
    assert_eq!(store.query(&AuditQuery { limit: 1000, ..AuditQuery::new(ws) }).unwrap().events.len(), 15);
}

trait NowForTest {
    fn now_ms_for_test(&self) -> u64;
}

impl NowForTest for ManualClock {
    fn now_ms_for_test(&self) -> u64 {
        orbit_workspace::Clock::now_ms(self)
    }
}
