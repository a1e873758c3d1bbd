use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "concurrency = 7\nlease = \"5s\"\nlisten = \"127.0.0.1:9\"\n",
    )
    .unwrap();
    let flags = ServeOptions {
        concurrency: Some(3),
        ..ServeOptions::default()
    };
    let s = Settings::resolve(flags, Some(&file), no_env).unwrap();
    assert_eq!(s.engine.concurrency, 3);
    assert_eq!(s.engine.lease, Duration::from_secs(5));
    assert_eq!(s.listen, "127.0.0.1:9".parse().unwrap());
    assert_eq!(s.engine.poll_interval, Duration::from_secs(1));
}

#[test]
fn an_unknown_key_in_the_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, "concurency = 7\n").unwrap();
    let err = Settings::resolve(ServeOptions::default(), Some(&file), no_env).unwrap_err();
    assert!(err.to_string().contains("s.toml"), "{err}");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    let providers =
        "[providers.default]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\napi_key_env = \"K\"\n";
    std::fs::write(&file, providers).unwrap();
    let env = |name: &str| match name {
        "SCRIPTORIUM_API_KEY" => Some("scr_secret123456789".to_owned()),
        "K" => Some("sk-provider-secret".to_owned()),
        _ => None,
    };
    let s = Settings::resolve(ServeOptions::default(), Some(&file), env).unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("secret123456789"), "{shown}");
    assert!(!shown.contains("provider-secret"), "{shown}");
}

#[test]
fn a_provider_key_variable_that_is_not_set_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    let providers = "[providers.gpu]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\napi_key_env = \"GPU_KEY\"\n";
    std::fs::write(&file, providers).unwrap();
    let err = Settings::resolve(ServeOptions::default(), Some(&file), no_env).unwrap_err();
    assert!(err.to_string().contains("GPU_KEY"), "{err}");
}

#[test]
fn the_quickstart_variables_define_the_default_provider() {
    let env = |name: &str| {
        (name == "SCRIPTORIUM_OPENAI_BASE_URL").then(|| "http://127.0.0.1:11434/v1".to_owned())
    };
    let s = Settings::resolve(ServeOptions::default(), None, env).unwrap();
    let default = &s.providers["default"];
    assert_eq!(default.kind, crate::providers::config::ProviderKind::Openai);
    assert_eq!(
        default.base_url.as_deref(),
        Some("http://127.0.0.1:11434/v1")
    );
}
