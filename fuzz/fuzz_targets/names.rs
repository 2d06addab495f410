//! Tokens, workspace and member names, roles and durations as a client
//! sends them: parsing never panics, and what parses prints back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orbit_workspace::{Role, TokenSecret, UserId, WorkspaceId};

fuzz_target!(|text: &str| {
    if let Ok(token) = TokenSecret::parse(text) {
        assert_eq!(token.expose(), text.trim());
        assert!(token.hash().ct_eq(&TokenSecret::parse(token.expose()).unwrap().hash()));
    }
    if let Ok(ws) = WorkspaceId::new(text) {
        assert_eq!(ws.as_str(), text);
        assert_eq!(ws.to_string().parse::<WorkspaceId>().unwrap(), ws);
    }
    if let Ok(user) = UserId::new(text) {
        assert_eq!(user.to_string().parse::<UserId>().unwrap(), user);
    }
    if let Ok(role) = text.parse::<Role>() {
        assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
    }
    let _ = orbit_workspace::parse_duration_ms(text);
    let _ = orbit_vault::HostBinding::parse(text);
    let _ = orbit_vault::MasterKey::parse(text);
});
