//! A JSON definition written as an application file (`apps pull`) and read back (`apps
//! push`): the same definition, and a file the folder loader accepts.

use serde_json::{Value, json};

use super::load;
use crate::apps::{definition_of, file_text};

#[test]
fn a_definition_written_as_a_file_reads_back_the_same_and_loads() {
    let definition = json!({
        "id": "quotes",
        "name": "Quotes \"and\" more",
        "status": "deployed",
        "temperature": 0.7,
        "max_tokens": 64,
        "system": "Tabs\tand a backslash \\ stay.",
        "prompt": "\"\"\"{{ inputs['Word'] | join(' ') }}\"\"\"\nends with a quote \"",
        "title": "\"",
        "inputs": [{"name": "Word", "input_type": "text", "required": true,
                    "description": null, "options": {"min_fields": 1, "max_fields": 2}}],
    });
    let Value::Object(object) = &definition else {
        unreachable!()
    };
    let text = file_text(object, "# quotes").unwrap();
    assert!(text.starts_with("# quotes\nid = \"quotes\"\n"), "{text}");

    let mut expected = definition.clone();
    expected["inputs"][0]
        .as_object_mut()
        .unwrap()
        .remove("description");
    assert_eq!(
        Value::Object(definition_of(&text).unwrap()),
        expected,
        "{text}"
    );
    let registry = load(&[("quotes.toml", &text)]).unwrap();
    assert_eq!(registry.all()[0].id.as_str(), "quotes");
}

#[test]
fn a_file_read_as_a_definition_leaves_out_created_at() {
    let read = definition_of(&format!(
        "created_at = 2025-01-01T00:00:00Z\n{}",
        super::MINIMAL
    ))
    .unwrap();
    assert!(!read.contains_key("created_at"), "{read:?}");
    assert_eq!(read["id"], "mini");
    assert!(definition_of("id = ").unwrap_err().contains("line 1"));
}
