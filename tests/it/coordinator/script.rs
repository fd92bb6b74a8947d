//! The script language: what scripts compile to, and where errors point.

use gymfleet::coordinator::script::{MAX_STEPS, Script, ScriptError, Step};
use gymfleet::gym::wire::{Action, Key};
use gymfleet_harness::prop::{self, PropertyFailure};
use proptest::prelude::*;

fn steps(text: &str) -> Vec<Step> {
    Script::parse(text).unwrap_or_else(|error| panic!("`{text}`: {error}")).steps().to_vec()
}

fn error(text: &str) -> ScriptError {
    Script::parse(text).expect_err("the script is invalid")
}

#[gymfleet_harness::test]
fn the_example_compiles_to_its_actions_and_frames() -> anyhow::Result<()> {
    let script = Script::parse("up*3 right wait:30 (a b)*2")?;
    use Step::{Press, Wait};
    assert_eq!(
        script.steps(),
        [
            Press(Key::Up), Press(Key::Up), Press(Key::Up), Press(Key::Right), Wait(30),
            Press(Key::A), Press(Key::B), Press(Key::A), Press(Key::B),
        ]
    );
    let actions = script.actions();
    assert_eq!(actions.len(), 9, "one action per step, so every state is observed");
    assert_eq!(actions[4], Action::wait(30)?);
    assert_eq!(script.frames(), 8 * 130 + 30);
    Ok(())
}

#[gymfleet_harness::test]
fn comments_newlines_and_nesting_are_allowed() {
    let text = "# walk to the door\nup*2\n(left (a)*2)*2  # twice\n";
    use Step::Press;
    let a = Press(Key::A);
    assert_eq!(
        steps(text),
        [Press(Key::Up), Press(Key::Up), Press(Key::Left), a, a, Press(Key::Left), a, a]
    );
    assert!(Script::parse("  # nothing\n").expect("blank is valid").is_empty());
}

#[gymfleet_harness::test]
fn errors_point_at_line_and_column_and_say_what_was_expected() {
    let unknown = error("up\n  jump");
    assert_eq!((unknown.line, unknown.column, unknown.found.as_str()), (2, 3, "`jump`"));
    assert!(unknown.expected.contains("a key"), "{unknown}");
    assert_eq!(
        unknown.to_string(),
        "line 2, column 3: expected a key (`a b start select up down left right`), `wait:N` or \
         `(`, found `jump`"
    );

    let zero_wait = error("wait:0");
    assert_eq!((zero_wait.line, zero_wait.column), (1, 6));
    assert_eq!(zero_wait.expected, format!("a frame count from 1 to {}", gymfleet::gym::wire::MAX_WAIT_FRAMES));

    let unclosed = error("(a b");
    assert_eq!((unclosed.column, unclosed.expected.as_str(), unclosed.found.as_str()), (5, "`)` to close the group", "the end of the script"));

    let stray = error("a )");
    assert_eq!((stray.column, stray.found.as_str()), (3, "`)`"));

    let bad_count = error("a*x");
    assert_eq!((bad_count.column, bad_count.expected.as_str()), (3, "a repeat count from 1 to 1000"));

    assert_eq!(error("wait 5").expected, "`:` and a frame count after `wait`");
    assert_eq!(error("()").expected, "a key, `wait:N` or `(` inside the group");
    assert!(error("A").expected.starts_with("a key"), "keys are lower case, as on the wire");
}

#[gymfleet_harness::test]
fn a_script_that_expands_past_the_limit_is_refused() {
    let huge = error("((a)*1000)*1000");
    assert!(huge.expected.contains(&MAX_STEPS.to_string()), "{huge}");
    assert!(Script::parse("(a)*1000").is_ok());
}

fn script_text() -> impl Strategy<Value = String> {
    let key = proptest::sample::select(vec!["a", "b", "start", "select", "up", "down", "left", "right"]);
    let leaf = prop_oneof![
        key.prop_map(str::to_owned),
        (1u32..200).prop_map(|frames| format!("wait:{frames}")),
    ];
    let item = leaf.prop_recursive(3, 12, 4, |inner| {
        proptest::collection::vec(inner, 1..4).prop_map(|items| format!("({})", items.join(" ")))
    });
    let repeated = (item, prop_oneof![Just(1u32), 2u32..5]).prop_map(|(item, count)| match count {
        1 => item,
        count => format!("{item}*{count}"),
    });
    proptest::collection::vec(repeated, 0..6).prop_map(|items| items.join("  "))
}

#[gymfleet_harness::test]
fn a_script_prints_back_to_an_equal_script_with_the_same_frames() -> Result<(), PropertyFailure> {
    prop::check(script_text(), |text| {
        let script = Script::parse(&text).map_err(|error| TestCaseError::fail(format!("`{text}`: {error}")))?;
        let printed = script.to_string();
        let reparsed = Script::parse(&printed).map_err(|error| TestCaseError::fail(format!("`{printed}`: {error}")))?;
        prop_assert_eq!(&reparsed, &script);
        let expected: u64 = script
            .steps()
            .iter()
            .map(|step| match step {
                Step::Press(_) => 130,
                Step::Wait(frames) => u64::from(*frames),
            })
            .sum();
        prop_assert_eq!(script.frames(), expected);
        Ok(())
    })
}

#[gymfleet_harness::test]
fn any_text_parses_or_fails_with_a_position_inside_it() -> Result<(), PropertyFailure> {
    let text = prop_oneof![any::<String>(), "[a-z:*() 0-9#\n]{0,40}"];
    prop::check(text, |text| {
        if let Err(error) = Script::parse(&text) {
            let n_lines = text.split('\n').count();
            prop_assert!(error.line >= 1 && error.line <= n_lines, "{error} in {text:?}");
            prop_assert!(error.column >= 1);
        }
        Ok(())
    })
}
