//! Vault behaviour against real redb files in temporary directories.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use orbit_vault::{
    HostBinding, MasterKey, MasterKeySource, Placement, SecretResolver, SecretValue, Vault, VaultError, VaultOptions,
};
use orbit_workspace::WorkspaceId;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// The vault's secret table, as the tests rewrite it directly.
const SECRETS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("vault_secrets");
const DEKS: TableDefinition<&str, &[u8]> = TableDefinition::new("vault_deks");
const CURRENT_DEK: TableDefinition<&str, &str> = TableDefinition::new("vault_current_dek");

const KEY: [u8; 32] = [0x42; 32];

fn ws(name: &str) -> WorkspaceId {
    WorkspaceId::new(name).unwrap()
}

fn bearer() -> Placement {
    Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() }
}

fn hosts() -> Vec<HostBinding> {
    vec![HostBinding::parse("https://api.example.com").unwrap()]
}

fn secret(v: &str) -> SecretValue {
    SecretValue::new(v.to_owned())
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.redb");
        Fixture { _dir: dir, path }
    }

    fn open(&self) -> Vault {
        Vault::open(&self.path, MasterKey::from_bytes(KEY)).unwrap()
    }

    fn open_with_limit(&self, limit: u64) -> Vault {
        Vault::open_with(&self.path, MasterKey::from_bytes(KEY), VaultOptions { max_encryptions_per_key: limit })
            .unwrap()
    }
}

fn read_record(path: &Path, ws: &str, name: &str) -> Vec<u8> {
    let db = Database::create(path).unwrap();
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(SECRETS).unwrap();
    table.get((ws, name)).unwrap().unwrap().value().to_vec()
}

fn write_record(path: &Path, ws: &str, name: &str, bytes: &[u8]) {
    let db = Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(SECRETS).unwrap().insert((ws, name), bytes).unwrap();
    tx.commit().unwrap();
}

fn all_records(path: &Path) -> Vec<((String, String), Vec<u8>)> {
    let db = Database::create(path).unwrap();
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(SECRETS).unwrap();
    table
        .iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            let (w, n) = k.value();
            ((w.to_owned(), n.to_owned()), v.value().to_vec())
        })
        .collect()
}

/// Splits a record per the documented layout: (dek id range, nonce range,
/// meta-length range, meta range, ciphertext range).
fn layout(rec: &[u8]) -> [std::ops::Range<usize>; 5] {
    let dek_len = rec[1] as usize;
    let dek = 2..2 + dek_len;
    let nonce = dek.end..dek.end + 12;
    let meta_len_r = nonce.end..nonce.end + 4;
    let meta_len = u32::from_be_bytes(rec[meta_len_r.clone()].try_into().unwrap()) as usize;
    let meta = meta_len_r.end..meta_len_r.end + meta_len;
    let ct = meta.end..rec.len();
    [dek, nonce, meta_len_r, meta, ct]
}

fn is_decrypt(r: &Result<Option<(orbit_vault::SecretMeta, SecretValue)>, VaultError>) -> bool {
    matches!(r, Err(VaultError::Decrypt { .. }))
}

fn read_dek(path: &Path, id: &str) -> Vec<u8> {
    let db = Database::create(path).unwrap();
    let tx = db.begin_read().unwrap();
    tx.open_table(DEKS).unwrap().get(id).unwrap().unwrap().value().to_vec()
}

fn write_dek(path: &Path, id: &str, bytes: &[u8]) {
    let db = Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(DEKS).unwrap().insert(id, bytes).unwrap();
    tx.commit().unwrap();
}

fn dek_id_of(record: &[u8]) -> String {
    String::from_utf8(record[layout(record)[0].clone()].to_vec()).unwrap()
}

#[test]
fn round_trip_set_resolve_list_remove() {
    let fx = Fixture::new();
    let vault = fx.open();
    let a = ws("alpha");
    let b = ws("beta");
    let meta = vault
        .set(
            &a,
            "STRIPE_KEY",
            secret("sk_live_roundtrip_111"),
            hosts(),
            bearer(),
            &orbit_workspace::UserId::new("cli").unwrap(),
        )
        .unwrap();
    assert_eq!(meta.name, "STRIPE_KEY");
    assert_eq!(meta.owner, Some(orbit_workspace::UserId::new("cli").unwrap()));
    assert!(meta.created_at_ms > 0);
    assert_eq!(meta.last_used_at_ms, None);
    vault
        .set(
            &a,
            "A_FIRST",
            secret("first_value_222"),
            hosts(),
            Placement::Query { param: "key".into() },
            &orbit_workspace::UserId::new("alice").unwrap(),
        )
        .unwrap();
    vault
        .set(
            &b,
            "STRIPE_KEY",
            secret("beta_value_333"),
            hosts(),
            bearer(),
            &orbit_workspace::UserId::new("bob").unwrap(),
        )
        .unwrap();

    let (m, v) = vault.resolve(&a, "STRIPE_KEY").unwrap().unwrap();
    assert_eq!(v.expose(), "sk_live_roundtrip_111");
    assert_eq!(m, meta);
    assert_eq!(vault.resolve(&b, "STRIPE_KEY").unwrap().unwrap().1.expose(), "beta_value_333");
    assert!(vault.resolve(&a, "MISSING").unwrap().is_none());
    assert!(vault.resolve(&ws("gamma"), "STRIPE_KEY").unwrap().is_none());

    let list = vault.list(&a).unwrap();
    let names: Vec<_> = list.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["A_FIRST", "STRIPE_KEY"]);
    let shown = format!("{list:?}");
    assert!(!shown.contains("sk_live_roundtrip_111") && !shown.contains("first_value_222"));
    assert_eq!(vault.list(&b).unwrap().len(), 1);
    assert!(vault.list(&ws("gamma")).unwrap().is_empty());

    // Replace.
    vault
        .set(
            &a,
            "STRIPE_KEY",
            secret("sk_live_replaced_444"),
            hosts(),
            bearer(),
            &orbit_workspace::UserId::new("cli").unwrap(),
        )
        .unwrap();
    assert_eq!(vault.resolve(&a, "STRIPE_KEY").unwrap().unwrap().1.expose(), "sk_live_replaced_444");
    assert_eq!(vault.list(&a).unwrap().len(), 2);

    assert!(vault.remove(&a, "STRIPE_KEY").unwrap());
    assert!(!vault.remove(&a, "STRIPE_KEY").unwrap());
    assert!(vault.resolve(&a, "STRIPE_KEY").unwrap().is_none());
    assert_eq!(vault.resolve(&b, "STRIPE_KEY").unwrap().unwrap().1.expose(), "beta_value_333");

    // Survives reopening.
    drop(vault);
    let vault = fx.open();
    assert_eq!(vault.resolve(&a, "A_FIRST").unwrap().unwrap().1.expose(), "first_value_222");
}

#[test]
fn set_validates_input() {
    let fx = Fixture::new();
    let vault = fx.open();
    let w = ws("default");
    for bad in ["", "has space", "slash/name", "ünï", &"x".repeat(129)] {
        assert!(
            matches!(
                vault.set(&w, bad, secret("value-12"), hosts(), bearer(), &orbit_workspace::UserId::new("t").unwrap()),
                Err(VaultError::InvalidSecretName(_))
            ),
            "{bad:?}"
        );
    }
    vault
        .set(&w, &"x".repeat(128), secret("value-12"), hosts(), bearer(), &orbit_workspace::UserId::new("t").unwrap())
        .unwrap();
    vault
        .set(&w, "a-b_c.D9", secret("value-12"), hosts(), bearer(), &orbit_workspace::UserId::new("t").unwrap())
        .unwrap();
    assert!(matches!(
        vault.set(&w, "n", secret("value-12"), vec![], bearer(), &orbit_workspace::UserId::new("t").unwrap()),
        Err(VaultError::NoHosts)
    ));
    let mut bad_host = hosts();
    bad_host[0].host = "API.example.com".into();
    assert!(matches!(
        vault.set(&w, "n", secret("value-12"), bad_host, bearer(), &orbit_workspace::UserId::new("t").unwrap()),
        Err(VaultError::InvalidHost { .. })
    ));
    let bad_placement = Placement::Header { name: "Authorization".into(), template: "Bearer".into() };
    assert!(matches!(
        vault.set(&w, "n", secret("value-12"), hosts(), bad_placement, &orbit_workspace::UserId::new("t").unwrap()),
        Err(VaultError::InvalidPlacement(_))
    ));
    let big = "v".repeat(Vault::MAX_VALUE_LEN + 1);
    assert!(matches!(
        vault.set(&w, "n", SecretValue::new(big), hosts(), bearer(), &orbit_workspace::UserId::new("t").unwrap()),
        Err(VaultError::ValueTooLarge { len: 8193, max: 8192 })
    ));
    vault
        .set(
            &w,
            "n",
            SecretValue::new("v".repeat(Vault::MAX_VALUE_LEN)),
            hosts(),
            bearer(),
            &orbit_workspace::UserId::new("t").unwrap(),
        )
        .unwrap();
    let err = vault
        .set(&w, "n", secret("tok\r\nX-Evil: injected"), hosts(), bearer(), &orbit_workspace::UserId::new("t").unwrap())
        .unwrap_err();
    assert!(matches!(err, VaultError::InvalidValue(_)));
    assert!(!err.to_string().contains("injected"), "errors never echo values");
    assert!(matches!(
        vault.set(&w, "n", secret(""), hosts(), bearer(), &orbit_workspace::UserId::new("t").unwrap()),
        Err(VaultError::InvalidValue(_))
    ));
}

/// Short values could be guessed through an echoing bound host by watching
/// what gets `[REDACTED]`; they are refused for every placement.
#[test]
fn set_refuses_values_shorter_than_8_bytes() {
    let fx = Fixture::new();
    let vault = fx.open();
    let w = ws("default");
    assert_eq!(Vault::MIN_VALUE_LEN, 8);
    let placements = [bearer(), Placement::Query { param: "key".into() }, Placement::Basic { username: "u".into() }];
    for placement in placements {
        for short in ["x", "pin", "1234", "hunter2"] {
            let err = vault
                .set(
                    &w,
                    "SHORT",
                    secret(short),
                    hosts(),
                    placement.clone(),
                    &orbit_workspace::UserId::new("t").unwrap(),
                )
                .unwrap_err();
            assert!(matches!(err, VaultError::InvalidValue(_)), "{short:?}: {err:?}");
            assert!(!err.to_string().contains(short), "errors never echo values");
        }
        vault
            .set(&w, "SHORT", secret("12345678"), hosts(), placement, &orbit_workspace::UserId::new("t").unwrap())
            .unwrap();
    }
    assert!(vault.list(&w).unwrap().len() == 1);
}

#[test]
fn flipping_any_byte_of_a_record_fails_to_decrypt() {
    let fx = Fixture::new();
    let w = ws("default");
    drop(
        fx.open()
            .set(
                &w,
                "TOKEN",
                secret("flip-me-value-0123456789"),
                hosts(),
                bearer(),
                &orbit_workspace::UserId::new("cli").unwrap(),
            )
            .unwrap(),
    );
    let original = read_record(&fx.path, "default", "TOKEN");
    let [dek, nonce, meta_len, meta, ct] = layout(&original);
    assert_eq!(dek.len(), 36);
    assert_eq!(ct.len(), "flip-me-value-0123456789".len() + 16);

    let mut decrypt_errors = 0;
    let mut tested = 0;
    for i in 0..original.len() {
        // Every byte of the framing, dek id, nonce and ciphertext, and every
        // third byte of the (JSON) metadata; alternating the low and high
        // bit. (Each case reopens the file, which costs a few fsyncs.)
        if meta.contains(&i) && (i - meta.start) % 3 != 0 {
            continue;
        }
        {
            let mask = if i % 2 == 0 { 0x01u8 } else { 0x80 };
            let mut tampered = original.clone();
            tampered[i] ^= mask;
            write_record(&fx.path, "default", "TOKEN", &tampered);
            let vault = fx.open();
            let result = vault.resolve(&w, "TOKEN");
            assert!(result.is_err(), "byte {i} ^ {mask:#x} still resolved");
            tested += 1;
            let in_authenticated = dek.contains(&i) || nonce.contains(&i) || meta.contains(&i) || ct.contains(&i);
            if in_authenticated {
                assert!(is_decrypt(&result), "byte {i} ^ {mask:#x}: expected Decrypt, got {result:?}");
                decrypt_errors += 1;
            } else if i == 0 {
                assert!(matches!(result, Err(VaultError::UnsupportedFormat(_))), "{result:?}");
            } else {
                // Framing: the dek-id length byte and the metadata length.
                assert!(i == 1 || meta_len.contains(&i));
                assert!(
                    matches!(result, Err(VaultError::Corrupt(_) | VaultError::Decrypt { .. })),
                    "byte {i}: {result:?}"
                );
            }
        }
    }
    assert!(decrypt_errors >= 12 + 36 + original.len() - ct.start, "{decrypt_errors}");
    assert!(tested > 150, "{tested} positions");
    write_record(&fx.path, "default", "TOKEN", &original);
    assert_eq!(fx.open().resolve(&w, "TOKEN").unwrap().unwrap().1.expose(), "flip-me-value-0123456789");

    // Truncation and extension fail too.
    for bytes in [&original[..original.len() - 1], &[&original[..], &[0u8]].concat()[..], &original[..20]] {
        write_record(&fx.path, "default", "TOKEN", bytes);
        assert!(fx.open().resolve(&w, "TOKEN").is_err());
    }
}

#[test]
fn records_moved_to_another_name_or_workspace_fail() {
    let fx = Fixture::new();
    let (a, b) = (ws("alpha"), ws("beta"));
    {
        let vault = fx.open();
        vault
            .set(&a, "ONE", secret("value-one-aaaa"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
            .unwrap();
        vault
            .set(&a, "TWO", secret("value-two-bbbb"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
            .unwrap();
        vault
            .set(
                &b,
                "ONE",
                secret("value-b-one-cccc"),
                hosts(),
                bearer(),
                &orbit_workspace::UserId::new("cli").unwrap(),
            )
            .unwrap();
    }
    let one = read_record(&fx.path, "alpha", "ONE");
    let two = read_record(&fx.path, "alpha", "TWO");

    // Copy to a new name in the same workspace.
    write_record(&fx.path, "alpha", "COPY", &one);
    // Swap two records between names.
    write_record(&fx.path, "alpha", "ONE", &two);
    write_record(&fx.path, "alpha", "TWO", &one);
    // Move to another workspace: one that has its own data key, one that has none.
    write_record(&fx.path, "beta", "ONE", &one);
    write_record(&fx.path, "gamma", "ONE", &one);

    let vault = fx.open();
    for (w, n) in [(&a, "COPY"), (&a, "ONE"), (&a, "TWO"), (&b, "ONE"), (&ws("gamma"), "ONE")] {
        let r = vault.resolve(w, n);
        assert!(is_decrypt(&r), "{w}/{n}: {r:?}");
    }
    drop(vault);

    // Even if the data key record is relabelled to the target workspace,
    // the wrap's AAD still names the original one.
    let dek_id = std::str::from_utf8(&one[2..2 + one[1] as usize]).unwrap().to_owned();
    {
        let db = Database::create(&fx.path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut deks = tx.open_table(DEKS).unwrap();
            let rec = deks.get(dek_id.as_str()).unwrap().unwrap().value().to_vec();
            let mut json: serde_json::Value = serde_json::from_slice(&rec).unwrap();
            json["workspace"] = "gamma".into();
            deks.insert(dek_id.as_str(), &serde_json::to_vec(&json).unwrap()[..]).unwrap();
        }
        tx.commit().unwrap();
    }
    let vault = fx.open();
    assert!(is_decrypt(&vault.resolve(&ws("gamma"), "ONE")));
    assert!(is_decrypt(&vault.resolve(&a, "TWO")), "the relabelled key no longer serves alpha either");
}

#[test]
fn wrong_master_key_is_refused() {
    let fx = Fixture::new();
    drop(
        fx.open()
            .set(
                &ws("default"),
                "K",
                secret("wrong-key-test-value"),
                hosts(),
                bearer(),
                &orbit_workspace::UserId::new("cli").unwrap(),
            )
            .unwrap(),
    );
    let err = Vault::open(&fx.path, MasterKey::from_bytes([0x43; 32])).unwrap_err();
    assert!(matches!(err, VaultError::WrongMasterKey), "{err:?}");
    // The right key still works afterwards (the failed open changed nothing).
    assert_eq!(fx.open().resolve(&ws("default"), "K").unwrap().unwrap().1.expose(), "wrong-key-test-value");
}

#[test]
fn nonces_are_unique_across_stored_records() {
    let fx = Fixture::new();
    let vault = fx.open_with_limit(16);
    let mut names = Vec::new();
    for i in 0..200 {
        let w = ws(&format!("ws{}", i % 4));
        let name = format!("S{i}");
        vault
            .set(&w, &name, secret("same-value"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
            .unwrap();
        names.push((w, name));
    }
    // Replacing a secret with the same value yields a new nonce too.
    for (w, n) in names.iter().take(50) {
        vault
            .set(w, n, secret("same-value"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
            .unwrap();
    }
    let status = vault.status().unwrap();
    assert!(status.data_keys.len() >= 250 / 16);
    drop(vault);
    let records = all_records(&fx.path);
    assert_eq!(records.len(), 200);
    let mut nonces = HashSet::new();
    let mut cts = HashSet::new();
    for (_, rec) in &records {
        let [_, nonce, _, _, ct] = layout(rec);
        assert!(nonces.insert(rec[nonce].to_vec()), "nonce repeated");
        assert!(cts.insert(rec[ct].to_vec()), "identical ciphertext for equal values");
    }
}

#[test]
fn vault_file_holds_no_plaintext() {
    let fx = Fixture::new();
    let values: Vec<String> = (0..8).map(|i| format!("CANARY-{i}-ab3f9e1d7c2b-{}", "Zq".repeat(i + 4))).collect();
    {
        let vault = fx.open_with_limit(3);
        for (i, v) in values.iter().enumerate() {
            let w = ws(if i % 2 == 0 { "even" } else { "odd" });
            vault
                .set(
                    &w,
                    &format!("S{i}"),
                    SecretValue::new(v.clone()),
                    hosts(),
                    bearer(),
                    &orbit_workspace::UserId::new("cli").unwrap(),
                )
                .unwrap();
            let (_, got) = vault.resolve(&w, &format!("S{i}")).unwrap().unwrap();
            assert_eq!(got.expose(), v);
            vault.mark_used(&w, &format!("S{i}"), 1_000 + i as u64).unwrap();
        }
        vault.rotate().unwrap();
        vault.remove(&ws("even"), "S0").unwrap();
        vault
            .set(
                &ws("even"),
                "S2",
                SecretValue::new(values[2].clone()),
                hosts(),
                bearer(),
                &orbit_workspace::UserId::new("cli").unwrap(),
            )
            .unwrap();
    }
    let raw = std::fs::read(&fx.path).unwrap();
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    for v in &values {
        let forms = [
            v.as_bytes().to_vec(),
            base64::engine::general_purpose::STANDARD.encode(v).into_bytes(),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(v).into_bytes(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v).into_bytes(),
            hex::encode(v).into_bytes(),
            // A long-enough fragment, in case of partial copies.
            v.as_bytes()[..16].to_vec(),
        ];
        for form in forms {
            assert!(!contains(&form), "found {:?} in the vault file", String::from_utf8_lossy(&form));
        }
    }
    // Nor the master key.
    assert!(!contains(&KEY));
    assert!(!contains(hex::encode(KEY).as_bytes()));
    assert!(!contains(base64::engine::general_purpose::STANDARD.encode(KEY).as_bytes()));
}

#[test]
fn rotation_rewraps_and_retire_keeps_everything_readable() {
    let fx = Fixture::new();
    let vault = fx.open();
    let (a, b) = (ws("alpha"), ws("beta"));
    vault
        .set(&a, "X", secret("rot-alpha-x"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
        .unwrap();
    vault.set(&b, "Y", secret("rot-beta-y"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap()).unwrap();
    let before = vault.status().unwrap();
    assert_eq!((before.kek_id.as_str(), before.kek_version), ("kek-v1", 1));
    assert!(before.data_keys.iter().all(|d| d.kek_id == "kek-v1"));
    assert!(matches!(vault.retire(1), Err(VaultError::RetireCurrent(1))));

    let report = vault.rotate().unwrap();
    assert_eq!((report.previous_version, report.version, report.rewrapped), (1, 2, 2));
    assert_eq!((report.previous_kek_id.as_str(), report.kek_id.as_str()), ("kek-v1", "kek-v2"));
    let after = vault.status().unwrap();
    assert_eq!(after.kek_id, "kek-v2");
    assert_eq!(after.data_keys.len(), 2);
    assert!(after.data_keys.iter().all(|d| d.kek_id == "kek-v2"), "{after:?}");
    // Same data keys (ids), only re-wrapped.
    let ids = |s: &orbit_vault::VaultStatus| s.data_keys.iter().map(|d| d.id.clone()).collect::<HashSet<_>>();
    assert_eq!(ids(&before), ids(&after));
    let v2 = after.keks.iter().find(|k| k.version == 2).unwrap();
    assert_eq!((v2.wraps, v2.data_keys, v2.current), (2, 2, true));

    assert_eq!(vault.resolve(&a, "X").unwrap().unwrap().1.expose(), "rot-alpha-x");
    assert_eq!(vault.resolve(&b, "Y").unwrap().unwrap().1.expose(), "rot-beta-y");
    vault
        .set(&a, "Z", secret("rot-alpha-z"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
        .unwrap();

    assert!(matches!(vault.retire(2), Err(VaultError::RetireCurrent(2))));
    assert!(matches!(vault.retire(7), Err(VaultError::UnknownKeyVersion(7))));
    vault.retire(1).unwrap();
    vault.retire(1).unwrap(); // idempotent
    let retired = vault.status().unwrap();
    assert!(retired.keks.iter().find(|k| k.version == 1).unwrap().retired_at_ms.is_some());
    for (w, n, v) in [(&a, "X", "rot-alpha-x"), (&b, "Y", "rot-beta-y"), (&a, "Z", "rot-alpha-z")] {
        assert_eq!(vault.resolve(w, n).unwrap().unwrap().1.expose(), v);
    }
    drop(vault);
    let vault = fx.open();
    assert_eq!(vault.resolve(&a, "X").unwrap().unwrap().1.expose(), "rot-alpha-x");
    let report = vault.rotate().unwrap();
    assert_eq!((report.previous_version, report.version), (2, 3));
    vault.retire(2).unwrap();
    assert_eq!(vault.resolve(&b, "Y").unwrap().unwrap().1.expose(), "rot-beta-y");
}

#[test]
fn retire_refuses_a_version_still_in_use() {
    let fx = Fixture::new();
    // With a limit of one wrap per KEK, the second workspace's data key
    // forces a new KEK version without re-wrapping the first.
    let vault = fx.open_with_limit(1);
    vault
        .set(&ws("alpha"), "X", secret("in-use-x"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
        .unwrap();
    vault
        .set(&ws("beta"), "Y", secret("in-use-y"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
        .unwrap();
    let status = vault.status().unwrap();
    assert_eq!(status.kek_version, 2);
    assert!(matches!(vault.retire(1), Err(VaultError::KeyInUse { version: 1, deks: 1 })));
    assert_eq!(vault.resolve(&ws("alpha"), "X").unwrap().unwrap().1.expose(), "in-use-x");
}

#[test]
fn data_key_rotates_at_the_encryption_limit() {
    let fx = Fixture::new();
    let w = ws("default");
    let vault = fx.open_with_limit(3);
    for i in 0..4 {
        vault
            .set(
                &w,
                &format!("S{i}"),
                secret(&format!("limit-value-{i}")),
                hosts(),
                bearer(),
                &orbit_workspace::UserId::new("cli").unwrap(),
            )
            .unwrap();
    }
    let status = vault.status().unwrap();
    assert_eq!(status.encryption_limit, 3);
    assert_eq!(status.data_keys.len(), 2, "{status:?}");
    let old = status.data_keys.iter().find(|d| !d.current).unwrap();
    let new = status.data_keys.iter().find(|d| d.current).unwrap();
    assert_eq!((old.encryptions, new.encryptions), (3, 1));
    drop(vault);

    let dek_of = |name: &str| {
        let rec = read_record(&fx.path, "default", name);
        String::from_utf8(rec[layout(&rec)[0].clone()].to_vec()).unwrap()
    };
    assert_eq!(dek_of("S0"), old.id);
    assert_eq!(dek_of("S1"), old.id);
    assert_eq!(dek_of("S2"), old.id);
    assert_eq!(dek_of("S3"), new.id, "the 4th set uses a new data key");

    // Counts persist across reopening.
    let vault = fx.open_with_limit(3);
    vault
        .set(&w, "S4", secret("limit-value-4"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
        .unwrap();
    vault
        .set(&w, "S5", secret("limit-value-5"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
        .unwrap();
    assert_eq!(vault.status().unwrap().data_keys.len(), 2);
    vault
        .set(&w, "S6", secret("limit-value-6"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
        .unwrap();
    let status = vault.status().unwrap();
    assert_eq!(status.data_keys.len(), 3);
    assert!(status.data_keys.iter().all(|d| d.encryptions <= 3));
    for i in 0..7 {
        assert_eq!(vault.resolve(&w, &format!("S{i}")).unwrap().unwrap().1.expose(), format!("limit-value-{i}"));
    }
}

#[test]
fn debug_output_never_shows_values_or_keys() {
    let v = secret("hunter2-debug-canary");
    assert_eq!(format!("{v:?}"), "SecretValue([REDACTED])");
    assert_eq!(format!("{:#?}", v), "SecretValue([REDACTED])");
    let key = MasterKey::from_bytes(KEY);
    let shown = format!("{key:?}");
    assert_eq!(shown, "MasterKey([REDACTED])");
    assert!(!shown.contains("42") && !shown.contains("66"));

    let fx = Fixture::new();
    let vault = fx.open();
    vault
        .set(
            &ws("default"),
            "D",
            secret("hunter2-debug-canary"),
            hosts(),
            bearer(),
            &orbit_workspace::UserId::new("cli").unwrap(),
        )
        .unwrap();
    let resolved = vault.resolve(&ws("default"), "D").unwrap().unwrap();
    assert!(!format!("{resolved:?}").contains("hunter2"));
    assert!(!format!("{vault:?}").contains("hunter2"));
}

#[test]
fn mark_used_records_the_latest_use() {
    let fx = Fixture::new();
    let vault = fx.open();
    let w = ws("default");
    vault.set(&w, "U", secret("used-value"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap()).unwrap();
    vault.mark_used(&w, "U", 5_000).unwrap();
    vault.mark_used(&w, "U", 4_000).unwrap();
    assert_eq!(vault.list(&w).unwrap()[0].last_used_at_ms, Some(5_000));
    assert_eq!(vault.resolve(&w, "U").unwrap().unwrap().0.last_used_at_ms, Some(5_000));
    vault.mark_used(&w, "NOPE", 1).unwrap();
    assert!(vault.resolve(&w, "NOPE").unwrap().is_none());
    // Through the trait object the fetch primitive holds.
    let resolver: Arc<dyn SecretResolver> = Arc::new(vault);
    resolver.mark_used(&w, "U", 6_000).unwrap();
    let (meta, value) = resolver.resolve(&w, "U").unwrap().unwrap();
    assert_eq!((meta.last_used_at_ms, value.expose()), (Some(6_000), "used-value"));
}

#[test]
fn replacing_a_secret_resets_last_use() {
    let fx = Fixture::new();
    let vault = fx.open();
    let w = ws("default");
    vault.set(&w, "U", secret("value-one"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap()).unwrap();
    vault.mark_used(&w, "U", 9).unwrap();
    vault.set(&w, "U", secret("value-two"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap()).unwrap();
    assert_eq!(vault.list(&w).unwrap()[0].last_used_at_ms, None);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn master_key_file_is_generated_then_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").join("orbit");
    let (k1, src) = MasterKey::from_sources(None, &data).unwrap();
    let path = data.join("master.key");
    assert_eq!(src, MasterKeySource::Generated(path.clone()));
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    MasterKey::parse(&text).unwrap();

    let (k2, src) = MasterKey::from_sources(None, &data).unwrap();
    assert_eq!(src, MasterKeySource::File(path.clone()));

    // Same key: a vault made with the first opens with the second.
    let vault_path = dir.path().join("v.redb");
    drop(Vault::open(&vault_path, k1).unwrap());
    Vault::open(&vault_path, k2).unwrap();
}

#[test]
fn env_value_wins_over_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let (file_key, _) = MasterKey::from_sources(None, dir.path()).unwrap();
    let env = hex::encode([0x11u8; 32]);
    let (env_key, src) = MasterKey::from_sources(Some(&env), dir.path()).unwrap();
    assert_eq!(src, MasterKeySource::Env);
    let b64 = base64::engine::general_purpose::STANDARD.encode([0x11u8; 32]);
    let (env_key_b64, _) = MasterKey::from_sources(Some(&b64), dir.path()).unwrap();

    let vault_path = dir.path().join("v.redb");
    drop(Vault::open(&vault_path, env_key).unwrap());
    Vault::open(&vault_path, env_key_b64).unwrap();
    // ...and it is not the file's key.
    let dir2 = tempfile::tempdir().unwrap();
    let p2 = dir2.path().join("v.redb");
    drop(Vault::open(&p2, MasterKey::from_bytes([0x11; 32])).unwrap());
    assert!(matches!(Vault::open(&p2, file_key), Err(VaultError::WrongMasterKey)));

    assert!(matches!(MasterKey::from_sources(Some("not a key"), dir.path()), Err(VaultError::InvalidMasterKey(_))));
    assert!(matches!(MasterKey::from_sources(Some(""), dir.path()), Err(VaultError::InvalidMasterKey(_))));
}

#[cfg(unix)]
#[test]
fn key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    MasterKey::from_sources(None, dir.path()).unwrap();
    let path = dir.path().join("master.key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = MasterKey::from_sources(None, dir.path()).unwrap_err();
    assert!(matches!(err, VaultError::InsecureKeyFile { mode: 0o644, .. }), "{err:?}");
    // A malformed file is an error, never silently replaced.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, "garbage").unwrap();
    assert!(matches!(MasterKey::from_sources(None, dir.path()), Err(VaultError::InvalidMasterKey(_))));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage");
}

#[cfg(unix)]
#[test]
fn new_vault_file_is_private() {
    let fx = Fixture::new();
    drop(fx.open());
    assert_eq!(mode(&fx.path), 0o600);
}

#[test]
fn meta_returns_what_resolve_does_without_decrypting() {
    let fx = Fixture::new();
    let vault = fx.open();
    let (a, b) = (ws("alpha"), ws("beta"));
    let stored = vault
        .set(&a, "M", secret("meta-value-1234"), hosts(), bearer(), &orbit_workspace::UserId::new("alice").unwrap())
        .unwrap();
    vault
        .set(
            &a,
            "Q",
            secret("meta-value-5678"),
            hosts(),
            Placement::Query { param: "k".into() },
            &orbit_workspace::UserId::new("cli").unwrap(),
        )
        .unwrap();
    vault.mark_used(&a, "Q", 7_000).unwrap();

    for name in ["M", "Q"] {
        let (resolved, _) = vault.resolve(&a, name).unwrap().unwrap();
        assert_eq!(vault.meta(&a, name).unwrap().unwrap(), resolved, "{name}");
    }
    assert_eq!(vault.meta(&a, "M").unwrap().unwrap(), stored);
    assert_eq!(vault.meta(&a, "Q").unwrap().unwrap().last_used_at_ms, Some(7_000));
    assert!(vault.meta(&a, "MISSING").unwrap().is_none());
    assert!(vault.meta(&b, "M").unwrap().is_none(), "other workspace");
    assert!(matches!(vault.meta(&a, "bad name"), Err(VaultError::InvalidSecretName(_))));
    for dots in [".", ".."] {
        assert!(matches!(vault.meta(&a, dots), Err(VaultError::InvalidSecretName(_))), "{dots}");
    }

    // Through the trait object the fetch primitive holds.
    let resolver: Arc<dyn SecretResolver> = Arc::new(vault);
    assert_eq!(resolver.meta(&a, "M").unwrap().unwrap(), resolver.resolve(&a, "M").unwrap().unwrap().0);
    assert!(resolver.meta(&a, "MISSING").unwrap().is_none());
    drop(resolver);

    // No cryptography: with the data key damaged, resolve fails but meta
    // still answers from the stored record.
    let dek_id = dek_id_of(&read_record(&fx.path, "alpha", "M"));
    let mut dek: serde_json::Value = serde_json::from_slice(&read_dek(&fx.path, &dek_id)).unwrap();
    let wrapped = dek["wrapped"].as_str().unwrap();
    dek["wrapped"] = format!("{}{}", if wrapped.starts_with('0') { '1' } else { '0' }, &wrapped[1..]).into();
    write_dek(&fx.path, &dek_id, &serde_json::to_vec(&dek).unwrap());
    let vault = fx.open();
    assert!(is_decrypt(&vault.resolve(&a, "M")));
    assert_eq!(vault.meta(&a, "M").unwrap().unwrap(), stored);
    drop(vault);

    // A record moved to another name is refused as resolve would refuse it.
    write_record(&fx.path, "alpha", "MOVED", &read_record(&fx.path, "alpha", "M"));
    assert!(matches!(fx.open().meta(&a, "MOVED"), Err(VaultError::Decrypt { .. })));
}

/// The trait's provided `meta` (for resolvers other than `Vault`) decrypts
/// and drops the value.
#[test]
fn secret_resolver_default_meta_uses_resolve() {
    struct One(orbit_vault::SecretMeta);
    impl SecretResolver for One {
        fn resolve(
            &self,
            _: &WorkspaceId,
            name: &str,
        ) -> Result<Option<(orbit_vault::SecretMeta, SecretValue)>, VaultError> {
            Ok((name == self.0.name).then(|| (self.0.clone(), secret("default-meta-value"))))
        }
        fn mark_used(&self, _: &WorkspaceId, _: &str, _: u64) -> Result<(), VaultError> {
            Ok(())
        }
    }
    let fx = Fixture::new();
    let meta = fx
        .open()
        .set(
            &ws("w"),
            "D",
            secret("default-meta-value"),
            hosts(),
            bearer(),
            &orbit_workspace::UserId::new("cli").unwrap(),
        )
        .unwrap();
    let resolver: Arc<dyn SecretResolver> = Arc::new(One(meta.clone()));
    assert_eq!(resolver.meta(&ws("w"), "D").unwrap(), Some(meta));
    assert_eq!(resolver.meta(&ws("w"), "OTHER").unwrap(), None);
}

/// Two vault files with the same master key: a data key and secret copied
/// from one into the other do not decrypt there (the vault id is bound
/// into the KEK derivation and the wrap's AAD).
#[test]
fn data_keys_and_secrets_copied_between_vaults_fail() {
    let (src, dst) = (Fixture::new(), Fixture::new());
    let w = ws("alpha");
    drop(
        src.open()
            .set(
                &w,
                "STOLEN",
                secret("cross-vault-canary-1"),
                hosts(),
                bearer(),
                &orbit_workspace::UserId::new("cli").unwrap(),
            )
            .unwrap(),
    );
    // The destination has its own secret (and data key) in another workspace.
    drop(
        dst.open()
            .set(
                &ws("beta"),
                "OWN",
                secret("own-value-12345"),
                hosts(),
                bearer(),
                &orbit_workspace::UserId::new("cli").unwrap(),
            )
            .unwrap(),
    );

    let record = read_record(&src.path, "alpha", "STOLEN");
    let dek_id = dek_id_of(&record);
    let dek = read_dek(&src.path, &dek_id);
    write_dek(&dst.path, &dek_id, &dek);
    write_record(&dst.path, "alpha", "STOLEN", &record);

    let vault = dst.open();
    let r = vault.resolve(&w, "STOLEN");
    assert!(is_decrypt(&r), "{r:?}");
    // The copy is visible as metadata (nothing is authenticated there) but
    // never as a value.
    assert!(vault.meta(&w, "STOLEN").unwrap().is_some());
    assert_eq!(vault.resolve(&ws("beta"), "OWN").unwrap().unwrap().1.expose(), "own-value-12345");
    drop(vault);

    // Made the workspace's current data key, it cannot be used to encrypt either.
    {
        let db = Database::create(&dst.path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(CURRENT_DEK).unwrap().insert("alpha", dek_id.as_str()).unwrap();
        tx.commit().unwrap();
    }
    let vault = dst.open();
    let err = vault
        .set(&w, "NEW", secret("new-value-12345"), hosts(), bearer(), &orbit_workspace::UserId::new("cli").unwrap())
        .unwrap_err();
    assert!(matches!(err, VaultError::UnwrapDataKey { .. }), "{err:?}");
    // ...and rotation refuses rather than re-wrapping a foreign key.
    assert!(matches!(vault.rotate(), Err(VaultError::UnwrapDataKey { .. })));
    drop(vault);

    // The source still reads its own copy.
    assert_eq!(src.open().resolve(&w, "STOLEN").unwrap().unwrap().1.expose(), "cross-vault-canary-1");
}
