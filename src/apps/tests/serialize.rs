//! Serialisation of inputs and options exactly as Writer's `Input` object.

use serde_json::json;

use super::example;
use crate::apps::spec::{DropdownOptions, FileOptions, MediaOptions, TextOptions, UploadType};
use crate::apps::{AppStatus, InputOptions, InputSpec, InputType, Inputs};

fn spec(input_type: InputType, options: Option<InputOptions>) -> InputSpec {
    InputSpec {
        name: "X".into(),
        input_type,
        required: false,
        description: None,
        options,
    }
}

#[test]
fn input_spec_without_description_or_options_has_no_such_keys() {
    let value = serde_json::to_value(spec(InputType::Text, None)).expect("serialises");
    assert_eq!(
        value,
        json!({"name": "X", "input_type": "text", "required": false})
    );
}

#[test]
fn options_serialise_untagged_as_the_variant_fields_only() {
    let text = InputOptions::Text(TextOptions {
        min_fields: 1,
        max_fields: 3,
    });
    let value = serde_json::to_value(spec(InputType::Text, Some(text))).expect("serialises");
    assert_eq!(value["options"], json!({"min_fields": 1, "max_fields": 3}));

    let list = InputOptions::Dropdown(DropdownOptions {
        list: vec!["a".into()],
    });
    assert_eq!(
        serde_json::to_value(list).expect("serialises"),
        json!({"list": ["a"]})
    );

    let file = InputOptions::File(FileOptions {
        file_types: vec!["pdf".into()],
        max_file_size_mb: 5,
        max_files: 2,
        max_word_count: 900,
        upload_types: vec![UploadType::Url, UploadType::FileId],
    });
    assert_eq!(
        serde_json::to_value(file).expect("serialises"),
        json!({"file_types": ["pdf"], "max_file_size_mb": 5, "max_files": 2,
               "max_word_count": 900, "upload_types": ["url", "file_id"]})
    );

    let media = InputOptions::Media(MediaOptions {
        file_types: vec!["png".into()],
        max_image_size_mb: 4,
    });
    let value = serde_json::to_value(media).expect("serialises");
    assert_eq!(
        value,
        json!({"file_types": ["png"], "max_image_size_mb": 4})
    );
}

#[test]
fn shipped_example_inputs_serialise_like_writer_inputs() {
    let app = example("product-descriptions");
    let value = serde_json::to_value(&app.inputs).expect("serialises");
    assert_eq!(
        value[1],
        json!({"name": "Tone", "input_type": "dropdown", "required": false,
               "description": "The voice of the copy",
               "options": {"list": ["friendly", "formal", "playful"]}})
    );
    assert!(
        value[2].get("options").is_none(),
        "Audience has no options key"
    );
}

#[test]
fn options_deserialise_back_into_the_matching_variant() {
    let text: InputOptions =
        serde_json::from_value(json!({"min_fields": 0, "max_fields": 2})).expect("text");
    assert!(matches!(text, InputOptions::Text(_)));
    let media: InputOptions =
        serde_json::from_value(json!({"file_types": ["png"], "max_image_size_mb": 4}))
            .expect("media");
    assert!(matches!(media, InputOptions::Media(_)));
}

#[test]
fn inputs_and_status_serialise_transparently_and_in_lowercase() {
    let inputs = Inputs([("A".to_owned(), vec!["1".to_owned()])].into());
    assert_eq!(
        serde_json::to_value(&inputs).expect("serialises"),
        json!({"A": ["1"]})
    );
    assert_eq!(
        serde_json::to_value(AppStatus::Draft).expect("serialises"),
        json!("draft")
    );
}
