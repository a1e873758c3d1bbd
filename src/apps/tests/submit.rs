//! Submit-time validation of a generate request's `inputs`.

use serde_json::{Value, json};

use super::{MINIMAL, app, example};
use crate::apps::InputError;

fn products(raw: Value) -> Result<crate::apps::Inputs, InputError> {
    example("product-descriptions").validate_inputs(Some(&raw))
}

fn error(raw: Value) -> InputError {
    products(raw).expect_err("inputs must be refused")
}

#[test]
fn absent_inputs_or_a_non_array_are_rejected() {
    let app = example("product-descriptions");
    let err = app.validate_inputs(None).expect_err("absent");
    assert_eq!(err.message, "inputs must be an array of {id, value}");
    assert_eq!(err.input, None);
    assert_eq!(
        error(json!({"id": "Tone"})).message,
        "inputs must be an array of {id, value}"
    );
}

#[test]
fn items_that_are_not_objects_with_a_string_id_are_rejected() {
    assert!(
        error(json!(["Tone"]))
            .message
            .contains("inputs[0] must be an object")
    );
    assert!(
        error(json!([{"id": 3, "value": []}]))
            .message
            .contains("inputs[0]: id must be a string")
    );
}

#[test]
fn value_that_is_not_an_array_of_strings_is_rejected_naming_the_input() {
    for value in [json!("friendly"), json!([1]), json!(null)] {
        let err = error(json!([{"id": "Tone", "value": value}]));
        assert_eq!(
            err.message,
            "input 'Tone': value must be an array of strings"
        );
        assert_eq!(err.input.as_deref(), Some("Tone"));
    }
    let err = error(json!([{"id": "Tone"}]));
    assert_eq!(
        err.message,
        "input 'Tone': value must be an array of strings"
    );
}

#[test]
fn unknown_input_is_rejected_naming_it_and_listing_the_declared_ones() {
    let err = error(json!([{"id": "Colour", "value": ["red"]}]));
    assert_eq!(
        err.message,
        "unknown input 'Colour'; this application takes: Product names, Tone, Audience"
    );
    assert_eq!(err.input.as_deref(), Some("Colour"));
}

#[test]
fn input_given_twice_is_rejected() {
    let raw =
        json!([{"id": "Product names", "value": ["a"]}, {"id": "Product names", "value": ["b"]}]);
    assert_eq!(error(raw).message, "input 'Product names' is given twice");
}

#[test]
fn missing_required_input_is_rejected_whether_absent_or_empty() {
    let expected = "missing required input 'Product names'";
    assert_eq!(error(json!([])).message, expected);
    assert_eq!(
        error(json!([{"id": "Product names", "value": []}])).message,
        expected
    );
}

#[test]
fn blank_values_of_a_required_text_input_count_as_missing() {
    let err = error(json!([{"id": "Product names", "value": ["", "  "]}]));
    assert_eq!(err.message, "missing required input 'Product names'");
}

#[test]
fn optional_inputs_may_be_empty_or_absent_and_every_declared_input_is_present() {
    let raw = json!([{"id": "Product names", "value": ["Kettle"]}, {"id": "Tone", "value": []}]);
    let inputs = products(raw).expect("valid");
    assert_eq!(inputs.values("Product names"), ["Kettle"]);
    assert!(inputs.values("Tone").is_empty());
    assert!(inputs.0.contains_key("Audience") && inputs.0.contains_key("Tone"));
    assert_eq!(inputs.0.len(), 3);
}

#[test]
fn text_value_count_outside_min_and_max_fields_is_rejected() {
    let many: Vec<String> = (0..11).map(|i| format!("product {i}")).collect();
    let err = error(json!([{"id": "Product names", "value": many}]));
    assert_eq!(
        err.message,
        "input 'Product names' takes between 1 and 10 values, got 11"
    );
    let reply = example("support-reply");
    let raw = json!([{"id": "Customer email", "value": ["hi", "again"]}]);
    let err = reply.validate_inputs(Some(&raw)).expect_err("two emails");
    assert_eq!(
        err.message,
        "input 'Customer email' takes exactly 1 value, got 2"
    );
}

#[test]
fn text_without_options_takes_any_number_of_values() {
    let words: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    let raw = json!([{"id": "Word", "value": words}]);
    let inputs = app(MINIMAL).validate_inputs(Some(&raw)).expect("valid");
    assert_eq!(inputs.values("Word").len(), 50);
}

#[test]
fn dropdown_value_outside_its_list_is_rejected() {
    let raw = json!([{"id": "Product names", "value": ["a"]}, {"id": "Tone", "value": ["loud"]}]);
    let err = error(raw);
    assert_eq!(
        err.message,
        "input 'Tone': 'loud' is not one of: friendly, formal, playful"
    );
    assert_eq!(err.input.as_deref(), Some("Tone"));
}

#[test]
fn dropdown_takes_at_most_one_value() {
    let raw = json!([{"id": "Product names", "value": ["a"]}, {"id": "Tone", "value": ["formal", "playful"]}]);
    assert_eq!(error(raw).message, "input 'Tone' takes one value, got 2");
}

#[test]
fn file_and_media_ids_pass_the_store_free_checks() {
    // Whether an id names a usable file is checked against the store (crate::files::rules).
    let extra = "\n[[inputs]]\nname = \"Doc\"\ninput_type = \"file\"\nrequired = false\n\
        \n[[inputs]]\nname = \"Photo\"\ninput_type = \"media\"\nrequired = false\n";
    let app = app(&format!("{MINIMAL}{extra}"));
    let raw = json!([{"id": "Word", "value": ["x"]}, {"id": "Doc", "value": ["file-123"]}, {"id": "Photo", "value": ["file-456"]}]);
    let inputs = app
        .validate_inputs(Some(&raw))
        .expect("ids are checked later");
    let given: Vec<(&str, &[String])> = app
        .file_inputs(&inputs)
        .map(|(spec, ids)| (spec.name.as_str(), ids))
        .collect();
    assert_eq!(given.len(), 2);
    assert_eq!(given[0].0, "Doc");
    assert_eq!(given[1].1, ["file-456".to_owned()]);
    let raw = json!([{"id": "Word", "value": ["x"]}, {"id": "Doc", "value": []}]);
    app.validate_inputs(Some(&raw))
        .expect("an empty optional file input is fine");
}
