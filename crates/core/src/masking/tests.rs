use super::*;
use proptest::prelude::*;
use serde_json::json;

fn masker(secrets: &[&str]) -> Masker {
    Masker::new(secrets.iter().map(|s| (*s).to_owned()))
}

#[test]
fn sensitive_keys_table() {
    let keys = SensitiveKeys::with_extra(["  Internal_ID ", ""]);
    let rows = [
        ("api_key", true),
        ("MY_API_KEY", true),
        ("db_password", true),
        ("Authorization", true),
        ("github_token", true),
        ("gcp_service_account_json", true),
        ("client-secret", true),
        ("internal_id_v2", true),
        ("bucket", false),
        ("pass", false),
        ("key", false),
    ];
    for (key, sensitive) in rows {
        assert_eq!(keys.is_sensitive(key), sensitive, "{key}");
    }
    assert!(!SensitiveKeys::default().is_sensitive("internal_id"));
}

#[test]
fn secrets_are_collected_under_sensitive_keys_at_any_depth() {
    let keys = SensitiveKeys::default();
    let mut out = BTreeSet::new();
    let extra = json!({"region": "eu", "headers": {"Authorization": "Bearer abcdefgh"}, "tokens": ["t-1111", 7]});
    keys.collect_secrets("extra", &extra, &mut out);
    keys.collect_secrets("api_key", &json!("k-123456"), &mut out);
    keys.collect_secrets("bucket", &json!("s3://b"), &mut out);
    assert_eq!(out, BTreeSet::from(["Bearer abcdefgh".to_owned(), "t-1111".to_owned(), "k-123456".to_owned()]));
}

/// What a try reading the variables `bucket` (plain) and `api_key` (secret) must not show.
fn bucket_and_api_key(keys: &SensitiveKeys) -> Confidential {
    let mut seen = Confidential::default();
    seen.add_variable("bucket", "s3://data", keys);
    seen.add_variable("api_key", "k-0123456789", keys);
    seen
}

#[test]
fn confidential_values_of_variables_and_connections() {
    let keys = SensitiveKeys::default();
    let mut seen = bucket_and_api_key(&keys);
    seen.add_variable("cfg", r#"{"depth": 4, "db_password": "pw-abcdef"}"#, &keys);
    let conn = Connection {
        conn_type: "postgres".into(),
        host: Some("db.internal".into()),
        login: Some("loader".into()),
        password: Some("hunter2-long".into()),
        extra: Connection::parse_extra(r#"{"sslmode": "require", "private_key": "-----BEGIN KEY-----"}"#).ok(),
        ..Connection::default()
    };
    seen.add_connection(&conn, &keys);
    let secrets: Vec<&str> = seen.secrets.iter().map(String::as_str).collect();
    assert_eq!(secrets, ["-----BEGIN KEY-----", "hunter2-long", "k-0123456789", "pw-abcdef"]);
    for value in ["s3://data", "4", "db.internal", "loader", "require", "hunter2-long", "k-0123456789"] {
        assert!(seen.restricted.contains(value), "{value}");
    }
}

#[test]
fn mask_table() {
    let m = masker(&["s3cr3t-value", "s3cr3t", "abc", "Password", "hunter\"2x"]);
    let rows = [
        ("nothing here", "nothing here"),
        ("key=s3cr3t-value;", "key=***;"),
        ("s3cr3t s3cr3t-value s3cr3t-valu", "*** *** ***-valu"),
        ("abc is too short to mask", "abc is too short to mask"),
        ("a common word: Password", "a common word: Password"),
        ("json {\"p\": \"hunter\\\"2x\"}", "json {\"p\": \"***\"}"),
        ("raw hunter\"2x", "raw ***"),
        ("ünïcödé s3cr3t ü", "ünïcödé *** ü"),
    ];
    for (text, expected) in rows {
        assert_eq!(m.mask(text), expected, "{text}");
    }
    assert!(matches!(m.mask("clean"), Cow::Borrowed(_)));
    assert_eq!(m.longest(), "s3cr3t-value".len());
}

#[test]
fn every_value_masks_short_values_too() {
    let m = Masker::every_value(["42".to_owned(), String::new(), "prod".to_owned()]);
    assert_eq!(m.mask("env=prod n=42"), "env=*** n=***");
}

#[test]
fn mask_json_masks_strings_and_keys() {
    let m = masker(&["topsecret"]);
    let value = json!({"argv": ["echo", "x=topsecret"], "topsecret": 1, "n": 5});
    assert_eq!(m.mask_json(&value), json!({"argv": ["echo", "x=***"], "***": 1, "n": 5}));
}

#[test]
fn redact_hides_values_under_sensitive_keys() {
    let keys = SensitiveKeys::default();
    let m = masker(&["known-secret"]);
    let value = json!({
        "env": {"API_KEY": "abc", "PATH": "/bin", "MSG": "it is known-secret"},
        "token_count": 5,
        "credentials": {"password": ["a", "b"], "user": "me"}
    });
    let expected = json!({
        "env": {"API_KEY": "***", "PATH": "/bin", "MSG": "it is ***"},
        "token_count": 5,
        "credentials": {"password": ["***", "***"], "user": "me"}
    });
    assert_eq!(keys.redact(&value, &m), expected);
}

/// Feeds `pieces` to a stream masker and returns what it gave back, checking the hold-back bound on the way.
fn stream(m: &Masker, pieces: &[&str]) -> String {
    let mut s = StreamMasker::new(m.clone());
    let mut out = String::new();
    for piece in pieces {
        out.push_str(&s.push(piece));
        assert!(s.held() < m.longest().max(1), "held {} bytes of {:?}", s.held(), pieces);
    }
    out + &s.finish()
}

#[test]
fn a_secret_split_at_every_position_is_masked() {
    let m = masker(&["hunter2-secret", "hunter2-secret-longer", "other-secret"]);
    let texts = [
        "before hunter2-secret after\n",
        "hunter2-secret-longer\nother-secret",
        "xx hunter2-secrethunter2-secret-longe",
        "hunter2-secre",
        "no secrets at all, only text\n",
        "ü hunter2-secret ü",
    ];
    for text in texts {
        let whole = m.mask(text).into_owned();
        for (cut, _) in text.char_indices().skip(1) {
            let (a, b) = text.split_at(cut);
            assert_eq!(stream(&m, &[a, b]), whole, "{text:?} cut at {cut}");
            for (cut2, _) in b.char_indices().skip(1) {
                let (b1, b2) = b.split_at(cut2);
                assert_eq!(stream(&m, &[a, b1, b2]), whole, "{text:?} cut at {cut} and {}", cut + cut2);
            }
        }
    }
}

#[test]
fn text_that_cannot_begin_a_secret_is_not_held() {
    let mut s = StreamMasker::new(masker(&["hunter2-secret"]));
    assert_eq!(s.push("a line\n"), "a line\n");
    assert_eq!(s.push("half: hunter2"), "half: ");
    assert_eq!(s.held(), "hunter2".len());
    assert_eq!(s.push("-secret!\n"), "***!\n");
    assert_eq!(s.push("hunt"), "");
    assert_eq!(s.finish(), "hunt");
}

#[test]
fn no_secrets_no_holding() {
    let mut s = StreamMasker::new(Masker::default());
    assert_eq!(s.push("anything"), "anything");
    assert_eq!(s.held(), 0);
}

proptest! {
    #[test]
    fn streaming_masks_as_the_whole_text_is_masked(
        secrets in proptest::collection::vec("[ab]{5,9}", 1..4),
        text in "[abc\n]{0,60}",
        cuts in proptest::collection::vec(0usize..60, 0..5),
    ) {
        let m = Masker::new(secrets);
        let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= text.len()).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut from = 0;
        for cut in cuts {
            pieces.push(&text[from..cut]);
            from = cut;
        }
        pieces.push(&text[from..]);
        prop_assert_eq!(stream(&m, &pieces), m.mask(&text).into_owned());
    }
}

#[test]
fn renderings_stored_and_shown_by_role() {
    let keys = SensitiveKeys::default();
    let seen = bucket_and_api_key(&keys);
    let rendered = json!({"argv": ["copy", "s3://data", "k-0123456789"], "env": {"TOKEN": "abc", "N": "1"}});
    let stored = stored_rendering(&rendered, &seen);
    assert_eq!(stored["argv"], json!(["copy", "s3://data", "***"]));
    assert_eq!(stored[RESTRICTED_RENDERING]["argv"], json!(["copy", "***", "***"]));
    let op = shown_rendering(&stored, true, &keys);
    assert_eq!(op, json!({"argv": ["copy", "s3://data", "***"], "env": {"TOKEN": "***", "N": "1"}}));
    let viewer = shown_rendering(&stored, false, &keys);
    assert_eq!(viewer, json!({"argv": ["copy", "***", "***"], "env": {"TOKEN": "***", "N": "1"}}));
    // Nothing read: nothing restricted, and the same for everyone.
    let plain = stored_rendering(&json!({"argv": ["echo"]}), &Confidential::default());
    assert_eq!(shown_rendering(&plain, false, &keys), json!({"argv": ["echo"]}));
}
