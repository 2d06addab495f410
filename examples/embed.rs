//! A host program that embeds the Orbit engine as a library.
//!
//! ```text
//! cargo run --example embed -- <component.wasm> [input]
//! ```
//!
//! It opens a data directory (`$ORBIT_HOME`, or a temporary one), builds the
//! engine once, runs the component in two workspaces with a tighter fuel
//! budget than the default, and prints each outcome with its spans.
//!
//! It shows both ways to handle tenancy:
//! - **Your own tenancy**: the engine takes a workspace and a principal
//!   from its caller. `team-a` and `team-b` exist only in this program;
//!   the runs carry `Principal::embedded()` (the default).
//! - **Orbit's tenancy**: a workspace created in the team store, a member,
//!   a token, and a run under the principal the token authenticates to
//!   (here read-only, so the run cannot write).

use std::time::Duration;

use orbit::{Invocation, Limits, Orbit, Principal, Role, TeamStore, TokenRequest, UserId, WorkspaceId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: embed <component.wasm> [input]")?;
    let input = args.next().unwrap_or_else(|| "# Hello from an embedding host".to_owned());

    let tmp = tempfile::tempdir()?;
    let data_dir = std::env::var_os("ORBIT_HOME").map(Into::into).unwrap_or_else(|| tmp.path().to_owned());
    // Build once per process: engine, linker, compile cache, run store.
    let orbit = Orbit::open(&data_dir)?;
    let component = orbit.engine().load(&std::fs::read(&path)?)?;
    println!("loaded {} ({})", component.digest(), component.kind());

    let mut limits = Limits::default();
    limits.fuel = 500_000_000;
    limits.timeout = Duration::from_secs(2);
    for workspace in ["team-a", "team-b"] {
        let invocation = Invocation::new(input.clone()).workspace(WorkspaceId::new(workspace)?).limits(limits.clone());
        let outcome = orbit.engine().invoke(&component, invocation).await?;
        let rec = &outcome.record;
        println!(
            "[{workspace}] run {} {} fuel={} took={:?} output={} bytes",
            rec.id,
            rec.status,
            rec.fuel_consumed,
            outcome.duration(),
            outcome.output.len()
        );
        for span in &rec.spans {
            println!(
                "    {}.{} {} in={}B out={}B {}µs",
                span.primitive, span.operation, span.outcome, span.bytes_in, span.bytes_out, span.duration_us
            );
        }
    }
    let page = orbit.runs().list(&orbit::RunQuery::new(WorkspaceId::new("team-a")?))?;
    println!("team-a has {} recorded run(s)", page.runs.len());

    // Orbit's own tenancy: a workspace, a read-only member, a token.
    let operator = Principal::local_operator();
    let docs = WorkspaceId::new("docs")?;
    if orbit.team().workspace(&docs)?.is_none() {
        orbit.team().create_workspace(&operator, &docs, &UserId::new("ada")?, Some("Docs"))?;
        orbit.team().add_member(&operator, &docs, &UserId::new("viewer")?, Role::ReadOnly, None)?;
    }
    let request =
        TokenRequest { user: UserId::new("viewer")?, role: None, agent: None, name: None, expires_in_ms: None };
    let issued = orbit.team().issue_token(&operator, &docs, request)?;
    // A front end authenticates the presented token on every request...
    let caller = orbit.team().authenticate(issued.secret.expose())?;
    // ...and runs with the workspace and principal the token decides.
    let invocation = Invocation::new(input).workspace(caller.workspace.clone()).principal(caller.principal.clone());
    let outcome = orbit.engine().invoke(&component, invocation).await?;
    println!(
        "[docs as {} ({})] run {} {}; refused writes: {}",
        caller.principal,
        caller.principal.role,
        outcome.record.id,
        outcome.record.status,
        outcome.record.spans.iter().filter(|s| s.outcome == "permission-denied").count()
    );
    orbit.revoke_token(&operator, &docs, caller.token.id)?;
    Ok(())
}
