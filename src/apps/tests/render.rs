//! Rendering templates into a prompt.

use serde_json::json;

use super::{MINIMAL, app, example};
use crate::apps::{InputFile, InputFiles, Inputs};

#[test]
fn rendering_includes_the_given_values() {
    let app = example("product-descriptions");
    let raw = json!([
        {"id": "Product names", "value": ["Steel bottle", "Bamboo mug"]},
        {"id": "Tone", "value": ["playful"]},
        {"id": "Audience", "value": ["hikers"]},
    ]);
    let inputs = app.validate_inputs(Some(&raw)).expect("valid");
    let prompt = app.render(&inputs, &InputFiles::new()).expect("renders");
    for needle in [
        "1. Steel bottle",
        "2. Bamboo mug",
        "Tone: playful.",
        "Audience: hikers.",
    ] {
        assert!(
            prompt.user.contains(needle),
            "{needle:?} not in {:?}",
            prompt.user
        );
    }
    assert!(prompt.system.is_some_and(|s| s.contains("copywriter")));
    assert_eq!(prompt.title.as_deref(), Some("Steel bottle and 1 more"));
}

#[test]
fn empty_optional_inputs_take_the_fallback_branches() {
    let app = example("support-reply");
    let raw = json!([{"id": "Customer email", "value": ["My parcel never arrived."]}]);
    let prompt = app
        .render(
            &app.validate_inputs(Some(&raw)).expect("valid"),
            &InputFiles::new(),
        )
        .expect("renders");
    assert!(prompt.user.contains("My parcel never arrived."));
    assert!(prompt.user.contains("No policy notes were given"));
    assert!(prompt.user.contains("The Support Team"));
    assert_eq!(prompt.title.as_deref(), Some("Reply to customer email"));
}

#[test]
fn social_post_follows_the_platform_and_call_to_action() {
    let app = example("social-post");
    let raw = json!([
        {"id": "Topic", "value": ["Our new Berlin office"]},
        {"id": "Platform", "value": ["X"]},
        {"id": "Call to action", "value": ["visit us"]},
    ]);
    let prompt = app
        .render(
            &app.validate_inputs(Some(&raw)).expect("valid"),
            &InputFiles::new(),
        )
        .expect("renders");
    assert!(
        prompt
            .user
            .starts_with("Write one X post about: Our new Berlin office.")
    );
    assert!(prompt.user.contains("280 characters") && prompt.user.contains("visit us"));
    assert_eq!(
        prompt.title.as_deref(),
        Some("X post: Our new Berlin office")
    );
}

#[test]
fn an_app_without_system_or_title_renders_only_the_user_prompt() {
    let app = app(MINIMAL);
    let inputs = Inputs(
        [(
            "Word".to_owned(),
            vec!["hello".to_owned(), "world".to_owned()],
        )]
        .into(),
    );
    let prompt = app.render(&inputs, &InputFiles::new()).expect("renders");
    assert_eq!(prompt.user, "Say hello world");
    assert_eq!((prompt.system, prompt.title), (None, None));
}

#[test]
fn declared_inputs_missing_from_the_map_render_as_empty() {
    let app = example("product-descriptions");
    let inputs = Inputs([("Product names".to_owned(), vec!["Lamp".to_owned()])].into());
    let prompt = app
        .render(&inputs, &InputFiles::new())
        .expect("Tone and Audience default to empty lists");
    assert!(prompt.user.contains("Tone: warm and clear."));
}

#[test]
fn a_prompt_that_renders_blank_for_some_inputs_is_a_render_error() {
    let text = MINIMAL.replace(
        "prompt = \"Say {{ inputs['Word'] | join(' ') }}\"",
        "prompt = \"{% if inputs['Word'][0] != 'hush' %}Say it{% endif %}\"",
    );
    let app = app(&text);
    let inputs = Inputs([("Word".to_owned(), vec!["hush".to_owned()])].into());
    let err = app
        .render(&inputs, &InputFiles::new())
        .expect_err("blank prompt");
    assert!(err.0.contains("empty"), "{err}");
}

#[test]
fn a_runtime_template_error_is_a_render_error_naming_the_template() {
    let boom =
        "join(' ') }}{% if inputs['Word'][0] == 'boom' %}{{ inputs['Word'][1] }}{% endif %}{{ ''";
    let app = app(MINIMAL.replace("join(' ')", boom).as_str());
    let inputs = Inputs([("Word".to_owned(), vec!["boom".to_owned()])].into());
    let err = app
        .render(&inputs, &InputFiles::new())
        .expect_err("index out of range is undefined");
    assert!(err.0.contains("template `prompt`"), "{err}");
}

#[test]
fn file_inputs_render_each_file_name_and_text() {
    let extra = "\n[[inputs]]\nname = \"Contract\"\ninput_type = \"file\"\nrequired = false\n";
    let source = MINIMAL.replace(
        "prompt = \"",
        "prompt = \"{% for f in files[\\\"Contract\\\"] %}[{{ f.name }}|{{ f.type }}: {{ f.text }}]{% endfor %} ",
    );
    let app = app(&format!("{source}{extra}"));
    let raw =
        json!([{"id": "Word", "value": ["x"]}, {"id": "Contract", "value": ["id-1", "id-2"]}]);
    let inputs = app.validate_inputs(Some(&raw)).expect("valid");
    let file = |id: &str, name: &str, text: &str| InputFile {
        id: id.into(),
        name: name.into(),
        kind: "txt".into(),
        text: text.into(),
    };
    let files = InputFiles::from([(
        "Contract".to_owned(),
        vec![
            file("id-1", "a.txt", "alpha"),
            file("id-2", "b.txt", "beta"),
        ],
    )]);
    let prompt = app.render(&inputs, &files).expect("renders");
    assert!(
        prompt
            .user
            .starts_with("[a.txt|txt: alpha][b.txt|txt: beta] "),
        "{}",
        prompt.user
    );
}
