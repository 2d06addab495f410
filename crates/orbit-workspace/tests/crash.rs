//! Crash test: SIGKILL while members are added, re-roled and removed,
//! tokens are issued and revoked, and audit events are appended on their
//! own (as each tool call's is). After every restart each acknowledged
//! change and event is there (each event once), and nothing is
//! half-applied: no removed member keeps a working token, and every
//! workspace still has an owner.
//!
//! The parent re-executes this test binary, selecting only [`team_child`],
//! with `ORBIT_TEAM_CRASH_CHILD` set to the database path. The child prints
//! `BEGIN <op>` before and `ACK <op>` after each change.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use orbit_workspace::{
    AuditEvent, AuditLog, AuditQuery, AuthFailure, Principal, RedbTeamStore, Role, TeamError, TeamStore, TokenId,
    TokenRequest, UserId, WorkspaceId,
};

const CHILD_ENV: &str = "ORBIT_TEAM_CRASH_CHILD";
const ROUNDS: usize = 8;

fn ws() -> WorkspaceId {
    WorkspaceId::new("crash").unwrap()
}

fn say(line: String) -> bool {
    std::io::stdout().write_all(format!("{line}\n").as_bytes()).is_ok()
}

/// The child: changes the team until killed (or 30 s as a safety net).
#[test]
fn team_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return; // Normal test runs: not the child.
    };
    let round: usize = std::env::var("ORBIT_TEAM_CRASH_ROUND").unwrap().parse().unwrap();
    let store = RedbTeamStore::open(std::path::Path::new(&path)).expect("child opens store");
    let op = Principal::local_operator();
    if store.workspace(&ws()).unwrap().is_none() {
        store.create_workspace(&op, &ws(), &UserId::new("boss").unwrap(), None).unwrap();
    }
    println!("\nREADY");
    let stop_at = Instant::now() + Duration::from_secs(30);
    let mut tokens: Vec<TokenId> = Vec::new();
    let mut i = 0usize;
    while Instant::now() < stop_at {
        let user = UserId::new(format!("r{round}-u{i}")).unwrap();
        let step = |line: String, f: &mut dyn FnMut() -> Option<String>| -> bool {
            if !say(format!("BEGIN {line}")) {
                return false;
            }
            match f() {
                Some(extra) => say(format!("ACK {line}{extra}")),
                None => true,
            }
        };
        if !step(format!("add {user}"), &mut || {
            store.add_member(&op, &ws(), &user, Role::Member, None).ok().map(|_| String::new())
        }) {
            return;
        }
        let mut issued = None;
        if !step(format!("issue {user}"), &mut || {
            let t = store
                .issue_token(
                    &op,
                    &ws(),
                    TokenRequest { user: user.clone(), role: None, agent: None, name: None, expires_in_ms: None },
                )
                .ok()?;
            issued = Some(t.record.id);
            Some(format!(" {} {}", t.record.id, t.secret.expose()))
        }) {
            return;
        }
        if let Some(id) = issued {
            tokens.push(id);
        }
        // Three a round, so that the audit log reaches a checkpoint
        // (256 events) within the test.
        for k in 0..3 {
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
            let event = AuditEvent::admin(ws(), &op, now_ms, "tool.call", format!("call-{round}-{i}-{k}"), None, "ok");
            let id = event.id;
            if !step(format!("audit {id}"), &mut || store.append(event.clone()).ok().map(|()| String::new())) {
                return;
            }
        }
        if i % 3 == 2 && tokens.len() >= 2 {
            let id = tokens[tokens.len() - 2];
            if !step(format!("revoke {id}"), &mut || store.revoke_token(&op, &ws(), id).ok().map(|_| String::new())) {
                return;
            }
        }
        if i % 4 == 3 {
            let prev = UserId::new(format!("r{round}-u{}", i - 1)).unwrap();
            if !step(format!("role {prev}"), &mut || {
                store.set_role(&op, &ws(), &prev, Role::ReadOnly).ok().map(|_| String::new())
            }) {
                return;
            }
        }
        if i % 5 == 4 {
            let old = UserId::new(format!("r{round}-u{}", i - 2)).unwrap();
            if !step(format!("rm {old}"), &mut || {
                store.remove_member(&op, &ws(), &old, vec![]).ok().map(|_| String::new())
            }) {
                return;
            }
        }
        i += 1;
    }
}

#[derive(Default)]
struct Expected {
    /// user -> Some(role) while a member, None once removed.
    members: HashMap<String, Option<Role>>,
    /// token text -> (id, user, revoked)
    tokens: HashMap<String, (String, String, bool)>,
    /// Ids of appended audit events.
    events: Vec<String>,
    /// Users or token ids touched by an op that began but was never acked.
    uncertain: Vec<String>,
}

fn replay(exp: &mut Expected, lines: &[String]) {
    let mut pending: Option<&str> = None;
    for line in lines {
        if let Some(op) = line.strip_prefix("BEGIN ") {
            pending = Some(op);
            continue;
        }
        let Some(ack) = line.strip_prefix("ACK ") else { continue };
        pending = None;
        let parts: Vec<&str> = ack.split(' ').collect();
        match parts.as_slice() {
            ["add", user] => {
                exp.members.insert(user.to_string(), Some(Role::Member));
            }
            ["issue", user, id, text] => {
                exp.tokens.insert(text.to_string(), (id.to_string(), user.to_string(), false));
            }
            ["revoke", id] => {
                for t in exp.tokens.values_mut().filter(|t| t.0 == *id) {
                    t.2 = true;
                }
            }
            ["audit", id] => exp.events.push(id.to_string()),
            ["role", user] => {
                exp.members.insert(user.to_string(), Some(Role::ReadOnly));
            }
            ["rm", user] => {
                exp.members.insert(user.to_string(), None);
                for t in exp.tokens.values_mut().filter(|t| t.1 == *user) {
                    t.2 = true;
                }
            }
            other => panic!("unexpected ack {other:?}"),
        }
    }
    if let Some(op) = pending {
        exp.uncertain.push(op.split(' ').nth(1).unwrap_or_default().to_owned());
    }
}

#[test]
fn acknowledged_team_changes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("team.redb");
    let exe = std::env::current_exe().unwrap();
    let mut exp = Expected::default();
    let mut rounds_with_acks = 0;
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["team_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .env("ORBIT_TEAM_CRASH_ROUND", round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line == "READY" => break,
                Ok(_) => {}
                Err(_) => panic!("round {round}: child never became ready"),
            }
        }
        // Pseudo-random kill moment, 20 to 400 ms into the writes.
        let wait = 20 + (seed.wrapping_mul(round as u64 + 7).wrapping_mul(0x9e37_79b9) % 380);
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().expect("SIGKILL child");
        assert!(!child.wait().unwrap().success(), "round {round}: child exited on its own");
        reader.join().unwrap();
        let lines: Vec<String> = rx.try_iter().collect();
        if lines.iter().any(|l| l.starts_with("ACK ")) {
            rounds_with_acks += 1;
        }
        replay(&mut exp, &lines);

        let store = RedbTeamStore::open(&db).expect("reopen after SIGKILL");
        let members: HashMap<String, Role> =
            store.members(&ws()).unwrap().into_iter().map(|m| (m.user.to_string(), m.role)).collect();
        assert_eq!(members.get("boss"), Some(&Role::Owner), "round {round}: the owner is there");
        for (user, want) in &exp.members {
            if exp.uncertain.contains(user) {
                continue;
            }
            assert_eq!(members.get(user), want.as_ref(), "round {round}: member {user}");
        }
        for (text, (id, user, revoked)) in &exp.tokens {
            if exp.uncertain.contains(id) || exp.uncertain.contains(user) {
                continue;
            }
            match store.authenticate(text) {
                Ok(a) => {
                    assert!(!revoked, "round {round}: revoked token {id} still works");
                    assert_eq!(a.principal.user_id().map(|u| u.to_string()).as_deref(), Some(user.as_str()));
                }
                Err(TeamError::Unauthenticated(AuthFailure::Revoked)) => {
                    assert!(*revoked, "round {round}: acknowledged token {id} is revoked")
                }
                Err(e) => panic!("round {round}: token {id}: {e}"),
            }
        }
        // Every acknowledged event, each once.
        let mut q = AuditQuery::new(ws());
        q.limit = 500;
        let mut listed = Vec::new();
        loop {
            let page = store.query(&q).unwrap();
            listed.extend(page.events.into_iter().map(|e| e.id.to_string()));
            match page.next_cursor {
                Some(c) => q.before = Some(c),
                None => break,
            }
        }
        let unique: std::collections::HashSet<&String> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "round {round}: an audit event listed twice");
        for id in &exp.events {
            assert!(unique.contains(id), "round {round}: acknowledged audit event {id} is missing");
        }
        // Nothing half-applied: every token of a non-member is revoked.
        for t in store.tokens(&Principal::local_operator(), &ws()).unwrap() {
            if !members.contains_key(t.user.as_str()) {
                assert!(t.revoked_at_ms.is_some(), "round {round}: removed member {} keeps token {}", t.user, t.id);
            }
        }
        drop(store);
    }
    eprintln!(
        "{} members, {} tokens and {} audit events acknowledged over {ROUNDS} rounds ({rounds_with_acks} with acks)",
        exp.members.len(),
        exp.tokens.len(),
        exp.events.len()
    );
    assert!(rounds_with_acks >= ROUNDS / 2, "too few rounds got far enough to test anything");
    assert!(exp.tokens.len() >= 4, "too few tokens issued to test anything");
}
