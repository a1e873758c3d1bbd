//! Loading a folder: the shipped examples, folder handling, ordering, drafts, defaults, and
//! the rejection of malformed fields, ids and inputs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{MINIMAL, assert_problem, examples_dir, load, problems, problems_of};
use crate::apps::{AppStatus, InputOptions, Registry};
use crate::store::RetryPolicy;

fn with(key_line: &str) -> String {
    MINIMAL.replacen(
        "status = \"deployed\"\n",
        &format!("status = \"deployed\"\n{key_line}\n"),
        1,
    )
}

#[test]
fn shipped_examples_load_and_are_all_deployed() {
    let registry = Registry::load_dir(&examples_dir()).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = registry.deployed().iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "product-descriptions",
            "social-post",
            "support-reply",
            "document-summary"
        ]
    );
    assert_eq!(registry.all().len(), 4);
    let products = registry
        .get("product-descriptions")
        .expect("product-descriptions");
    let names: Vec<&str> = products.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["Product names", "Tone", "Audience"]);
}

#[test]
fn applications_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<crate::apps::Application>();
    assert_send_sync::<Registry>();
}

#[test]
fn empty_folder_loads_zero_apps() {
    let registry = load(&[]).expect("empty folder is fine");
    assert!(registry.all().is_empty());
    assert!(registry.deployed().is_empty());
}

#[test]
fn missing_folder_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope");
    let err = Registry::load_dir(&missing).expect_err("missing folder");
    assert_problem(
        &err.problems,
        &["nope", "cannot read the applications folder"],
    );
}

#[test]
fn files_that_are_not_toml_or_are_hidden_are_ignored() {
    let registry = load(&[
        ("README.md", "not toml"),
        (".draft.toml", "x ="),
        ("a.toml", MINIMAL),
    ])
    .expect("only a.toml is read");
    assert_eq!(registry.all().len(), 1);
}

#[test]
fn drafts_are_loaded_but_not_served() {
    let draft = MINIMAL
        .replace("\"deployed\"", "\"draft\"")
        .replace("\"mini\"", "\"wip\"");
    let registry = load(&[("a.toml", MINIMAL), ("b.toml", &draft)]).expect("loads");
    assert_eq!(registry.all().len(), 2);
    assert!(registry.get("wip").is_none());
    assert!(registry.get("mini").is_some());
    assert_eq!(registry.deployed().len(), 1);
    assert!(
        registry
            .all()
            .iter()
            .any(|a| a.id.as_str() == "wip" && a.status == AppStatus::Draft)
    );
}

#[test]
fn apps_are_sorted_by_creation_time_then_id() {
    let make = |id: &str, created: &str| {
        with(&format!("created_at = \"{created}\"")).replace("\"mini\"", &format!("\"{id}\""))
    };
    let (c, a, b) = (
        make("c", "2024-01-01T00:00:00Z"),
        make("a", "2025-01-01T00:00:00Z"),
        make("b", "2024-01-01T00:00:00Z"),
    );
    let registry = load(&[("1.toml", &a), ("2.toml", &b), ("3.toml", &c)]).expect("loads");
    let ids: Vec<&str> = registry.deployed().iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["b", "c", "a"]);
}

#[test]
fn defaults_apply_when_optional_fields_are_absent() {
    let before = SystemTime::now() - Duration::from_secs(5);
    let app = super::app(MINIMAL);
    assert_eq!(app.providers, ["default"]);
    assert_eq!(app.retry, RetryPolicy::default());
    assert_eq!(app.model, None);
    assert!(
        app.created_at >= before,
        "created_at defaults to the file's mtime"
    );
    assert_eq!(app.created_at, app.updated_at);
}

#[test]
fn created_at_accepts_offsets_and_toml_datetimes() {
    let expected = UNIX_EPOCH + Duration::from_secs(1_735_689_600); // 2025-01-01T00:00:00Z
    let quoted = super::app(&with("created_at = \"2025-01-01T02:00:00+02:00\""));
    assert_eq!(quoted.created_at, expected);
    let native = super::app(&with("created_at = 2024-12-31T19:00:00-05:00"));
    assert_eq!(native.created_at, expected);
}

#[test]
fn settings_are_read_from_the_file() {
    let text = with(
        "provider = \"writer\"\nmodel = \"palmyra-x5\"\ntemperature = 1\nmax_tokens = 64\n\
         max_attempts = 5\nbackoff_initial = \"250ms\"\nbackoff_max = \"2s\"",
    );
    let app = super::app(&text);
    assert_eq!(
        (&app.providers[..], app.model.as_deref()),
        (&["writer".to_owned()][..], Some("palmyra-x5"))
    );
    assert_eq!((app.temperature, app.max_tokens), (Some(1.0), Some(64)));
    let retry = RetryPolicy {
        max_attempts: 5,
        backoff_initial_ms: 250,
        backoff_max_ms: 2000,
        max_wait_ms: 24 * 3_600_000,
    };
    assert_eq!(app.retry, retry);
}

#[test]
fn providers_are_read_in_order_of_preference() {
    let app = super::app(&with("providers = [\"gpu\", \"openai\"]"));
    assert_eq!(app.providers, ["gpu", "openai"]);
}

#[test]
fn provider_and_providers_together_or_an_empty_or_repeating_list_are_rejected() {
    let both = with("provider = \"gpu\"\nproviders = [\"gpu\", \"openai\"]");
    assert_problem(
        &problems_of(&both),
        &["app.toml:5:", "either provider or providers, not both"],
    );
    assert_problem(
        &problems_of(&with("providers = []")),
        &["app.toml:4:", "providers must name at least one provider"],
    );
    assert_problem(
        &problems_of(&with("providers = [\"gpu\", \" \"]")),
        &["app.toml:4:", "providers must not contain a blank name"],
    );
    assert_problem(
        &problems_of(&with("providers = [\"gpu\", \"gpu\"]")),
        &["app.toml:4:", "names 'gpu' twice"],
    );
    assert_problem(
        &problems_of(&with("provider = \"\"")),
        &["app.toml:4:", "provider must not be blank"],
    );
}

#[test]
fn toml_syntax_error_is_reported_with_file_and_line() {
    let problems = problems_of(&with("temperature = = 1"));
    assert_problem(&problems, &["app.toml:4:"]);
}

#[test]
fn unknown_key_is_rejected_with_its_line() {
    let problems = problems_of(&with("colour = \"blue\""));
    assert_problem(&problems, &["app.toml:4:", "unknown field `colour`"]);
}

#[test]
fn missing_prompt_is_rejected() {
    let text = MINIMAL.replace("prompt = \"Say {{ inputs['Word'] | join(' ') }}\"\n", "");
    assert_problem(&problems_of(&text), &["app.toml", "missing field `prompt`"]);
}

#[test]
fn bad_id_syntax_is_rejected_with_its_line() {
    let problems = problems_of(&MINIMAL.replace("\"mini\"", "\"has space\""));
    assert_problem(&problems, &["app.toml:1:", "id 'has space'"]);
    let problems = problems_of(&MINIMAL.replace("\"mini\"", "\"jobs\""));
    assert_problem(&problems, &["app.toml:1:", "reserved"]);
}

#[test]
fn duplicate_app_ids_name_both_files() {
    let problems = problems(&[("a.toml", MINIMAL), ("b.toml", MINIMAL)]);
    assert_problem(
        &problems,
        &["b.toml:1:", "duplicate application id 'mini'", "a.toml:1"],
    );
}

#[test]
fn out_of_range_settings_are_each_rejected() {
    let text = with(
        "temperature = 2.5\nmax_tokens = 0\nmax_attempts = 0\nbackoff_initial = \"10s\"\n\
         backoff_max = \"1s\"\ncreated_at = \"yesterday\"",
    );
    let problems = problems_of(&text);
    assert_problem(&problems, &["app.toml:4:", "temperature"]);
    assert_problem(&problems, &["app.toml:5:", "max_tokens"]);
    assert_problem(&problems, &["app.toml:6:", "max_attempts"]);
    assert_problem(
        &problems,
        &["app.toml:8:", "backoff_max must not be shorter"],
    );
    assert_problem(&problems, &["app.toml:9:", "created_at"]);
    assert_problem(
        &problems_of(&with("backoff_initial = \"soon\"")),
        &["app.toml:4:", "duration"],
    );
}

#[test]
fn problems_in_several_files_are_all_reported() {
    let problems = problems(&[
        ("a.toml", &with("colour = 1")),
        ("b.toml", &with("max_tokens = 0")),
    ]);
    assert_problem(&problems, &["a.toml:4:", "colour"]);
    assert_problem(&problems, &["b.toml:4:", "max_tokens"]);
}

#[test]
fn duplicate_input_names_are_rejected() {
    let text = format!(
        "{MINIMAL}\n[[inputs]]\nname = \"Word\"\ninput_type = \"text\"\nrequired = false\n"
    );
    assert_problem(
        &problems_of(&text),
        &["app.toml:12:", "input 'Word' is declared twice"],
    );
}

#[test]
fn options_of_the_wrong_variant_are_rejected() {
    let text = format!("{MINIMAL}options = {{ list = [\"a\"] }}\n");
    assert_problem(
        &problems_of(&text),
        &["app.toml:10:", "input 'Word'", "{min_fields, max_fields}"],
    );
}

#[test]
fn malformed_options_are_rejected() {
    let text = format!("{MINIMAL}options = {{ min_fields = 3, max_fields = 2 }}\n");
    assert_problem(
        &problems_of(&text),
        &["app.toml:10:", "min_fields (3) must not exceed"],
    );
    let text = format!("{MINIMAL}options = {{ min_fields = 1 }}\n");
    assert_problem(
        &problems_of(&text),
        &["app.toml:10:", "missing field `max_fields`"],
    );
    let dropdown = "\n[[inputs]]\nname = \"Tone\"\ninput_type = \"dropdown\"\nrequired = false\n";
    let text = format!("{MINIMAL}{dropdown}options = {{ list = [\"a\", \"a\"] }}\n");
    assert_problem(&problems_of(&text), &["app.toml:15:", "'a' twice"]);
    let text = format!("{MINIMAL}{dropdown}options = {{ list = [] }}\n");
    assert_problem(&problems_of(&text), &["input 'Tone'", "must not be empty"]);
    assert_problem(
        &problems_of(&format!("{MINIMAL}{dropdown}")),
        &["app.toml:11:", "needs options"],
    );
}

#[test]
fn file_options_are_parsed_as_their_own_variant() {
    let file = "\n[[inputs]]\nname = \"Doc\"\ninput_type = \"file\"\nrequired = false\n\
        options = { file_types = [\"pdf\"], max_file_size_mb = 5, max_files = 2, max_word_count = 1000, upload_types = [\"file_id\"] }\n";
    let app = super::app(&format!("{MINIMAL}{file}"));
    assert!(matches!(&app.inputs[1].options, Some(InputOptions::File(f)) if f.max_files == 2));
    let bad = file.replace("\"file_id\"", "\"ftp\"");
    assert_problem(
        &problems_of(&format!("{MINIMAL}{bad}")),
        &["input 'Doc'", "ftp"],
    );
}
