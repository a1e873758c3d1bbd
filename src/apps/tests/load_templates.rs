//! Load-time rejection of templates: syntax errors, unknown variables, references to
//! undeclared inputs, and errors that only a trial render reveals, each at its file line.

use super::{MINIMAL, assert_problem, problems_of};

/// MINIMAL with its one-line prompt replaced by `prompt` (which starts on line 4).
fn with_prompt(prompt: &str) -> String {
    MINIMAL.replace("prompt = \"Say {{ inputs['Word'] | join(' ') }}\"", prompt)
}

/// A multi-line prompt whose third template line is `line3`; the template's line 1 is file
/// line 5 because the newline after the opening quotes is not part of the string.
fn three_line_prompt(line3: &str) -> String {
    with_prompt(&format!(
        "prompt = \"\"\"\nWrite about:\n{{{{ inputs['Word'][0] }}}}\n{line3}\"\"\""
    ))
}

#[test]
fn template_syntax_error_points_at_the_file_line() {
    let problems = problems_of(&three_line_prompt("{% if %}"));
    assert_problem(
        &problems,
        &["app.toml:7:", "template `prompt`", "syntax error"],
    );
}

#[test]
fn syntax_errors_in_several_templates_are_all_reported() {
    let text = with_prompt("system = \"{{ \"\nprompt = \"ok\"\ntitle = \"{% endif %}\"");
    let problems = problems_of(&text);
    assert_problem(&problems, &["app.toml:4:", "template `system`"]);
    assert_problem(&problems, &["app.toml:6:", "template `title`"]);
}

#[test]
fn unknown_top_level_variable_is_rejected() {
    let problems = problems_of(&three_line_prompt("{{ user_name }}"));
    assert_problem(&problems, &["app.toml:7:", "unknown variable `user_name`"]);
}

#[test]
fn global_functions_and_loop_variables_are_allowed() {
    let ok = three_line_prompt("{% for i in range(2) %}{{ loop.index }}{{ i }}{% endfor %}");
    super::app(&ok);
}

#[test]
fn subscript_of_an_undeclared_input_is_rejected_at_its_line() {
    let problems = problems_of(&three_line_prompt("{{ inputs[\"Wrd\"] | join(', ') }}"));
    assert_problem(
        &problems,
        &[
            "app.toml:7:",
            "inputs[\"Wrd\"]",
            "not a declared input",
            "Word",
        ],
    );
}

#[test]
fn undeclared_input_in_a_branch_no_trial_takes_is_still_rejected() {
    let line3 = "{% if inputs['Word'][0] == 'never' %}{{ inputs['Nope'] }}{% endif %}";
    assert_problem(
        &problems_of(&three_line_prompt(line3)),
        &["app.toml:7:", "inputs[\"Nope\"]"],
    );
}

#[test]
fn attribute_of_an_undeclared_input_is_rejected() {
    let problems = problems_of(&three_line_prompt("{{ inputs.Topic }}"));
    assert_problem(
        &problems,
        &["app.toml:7:", "inputs.Topic", "not a declared input"],
    );
}

#[test]
fn strict_undefined_surfaces_in_the_trial_render_with_optional_inputs_empty() {
    let optional = "\n[[inputs]]\nname = \"Tone\"\ninput_type = \"text\"\nrequired = false\n";
    let text = format!(
        "{}{optional}",
        three_line_prompt("Tone: {{ inputs['Tone'][0] }}")
    );
    let problems = problems_of(&text);
    assert_problem(
        &problems,
        &["app.toml:7:", "trial render", "every optional input empty"],
    );
}

#[test]
fn prompt_that_renders_blank_is_rejected() {
    let problems = problems_of(&with_prompt("prompt = \"{% if false %}x{% endif %}\""));
    assert_problem(&problems, &["app.toml:4:", "renders to an empty text"]);
}

#[test]
fn trial_render_uses_the_first_dropdown_item_and_min_fields_values() {
    let dropdown = "\n[[inputs]]\nname = \"Tone\"\ninput_type = \"dropdown\"\nrequired = true\n\
        options = { list = [\"calm\", \"loud\"] }\n";
    let prompt = "prompt = \"{{ inputs['Word'][1] }}{% if inputs['Tone'][0] != 'calm' %}{{ boom() }}{% endif %}\"";
    let text = format!(
        "{}options = {{ min_fields = 2, max_fields = 4 }}\n{dropdown}",
        with_prompt(prompt)
    );
    // `boom` is an unknown variable, caught statically even though no trial reaches it.
    assert_problem(&problems_of(&text), &["unknown variable `boom`"]);
    let fine = text.replace("{{ boom() }}", "x");
    super::app(&fine);
}
