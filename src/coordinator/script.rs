//! Scripts: a small text language for input sequences, compiled to gym
//! actions.
//!
//! ```text
//! up*3 right wait:30 (a b)*2   # comments run to the end of the line
//! ```
//!
//! A script is a sequence of items separated by white space. An item is a
//! key (`a b start select up down left right`), a wait (`wait:FRAMES`), or
//! a group of items in parentheses, optionally repeated with `*COUNT`.
//! Parsing is sans-IO and reports the line and column of the first error
//! with what was expected there.

use std::fmt;

use crate::gym::wire::{Action, Key, MAX_WAIT_FRAMES};

/// The most steps a script may expand to, so that nested repetitions
/// cannot ask for unbounded work.
pub const MAX_STEPS: usize = 10_000;

/// The largest repeat count.
pub const MAX_REPEAT: u32 = 1_000;

/// One step of an expanded script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Press a key.
    Press(Key),
    /// Let frames pass.
    Wait(u32),
}

impl Step {
    /// The frames the server emulates for the step.
    pub fn frames(self) -> u64 {
        match self {
            Step::Press(_) => crate::gym::wire::FRAMES_PER_KEY_PRESS,
            Step::Wait(frames) => u64::from(frames),
        }
    }
}

impl fmt::Display for Step {
    /// The step as one script item: `up`, `wait:30`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Press(key) => write!(formatter, "{key}"),
            Step::Wait(frames) => write!(formatter, "wait:{frames}"),
        }
    }
}

/// A parsed script: its items as written, so that it prints back the same
/// way, and its expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    items: Vec<Item>,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Press(Key, u32),
    Wait(u32, u32),
    Group(Vec<Item>, u32),
}

/// Where a script is wrong and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: expected {expected}, found {found}")]
pub struct ScriptError {
    /// The 1-based line.
    pub line: usize,
    /// The 1-based column, in characters.
    pub column: usize,
    /// What would have been valid.
    pub expected: String,
    /// What was there instead.
    pub found: String,
}

impl Script {
    /// Parses a script.
    pub fn parse(text: &str) -> Result<Script, ScriptError> {
        let mut parser = Parser { text, position: 0 };
        let items = parser.items(0)?;
        let mut steps = Vec::new();
        expand(&items, &mut steps).map_err(|()| {
            parser.error_at(
                text.len(),
                &format!("a script of at most {MAX_STEPS} steps once repetitions are expanded"),
            )
        })?;
        Ok(Script { items, steps })
    }

    /// The expanded steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The gym actions to send, one per step, so that the state after every
    /// step is observed.
    pub fn actions(&self) -> Vec<Action> {
        self.steps
            .iter()
            .map(|step| match step {
                Step::Press(key) => Action::press([*key]).expect("one key is a valid press"),
                Step::Wait(frames) => {
                    Action::wait(u64::from(*frames)).expect("waits are validated when parsed")
                }
            })
            .collect()
    }

    /// The frames the server emulates for the whole script.
    pub fn frames(&self) -> u64 {
        self.steps.iter().map(|step| step.frames()).sum()
    }

    /// Returns true if and only if the script does nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl fmt::Display for Script {
    /// Prints the script in its canonical form, which parses back to an
    /// equal script.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_items(formatter, &self.items)
    }
}

fn write_items(formatter: &mut fmt::Formatter<'_>, items: &[Item]) -> fmt::Result {
    for (item_idx, item) in items.iter().enumerate() {
        if item_idx > 0 {
            formatter.write_str(" ")?;
        }
        let count = match item {
            Item::Press(key, count) => {
                write!(formatter, "{key}")?;
                count
            }
            Item::Wait(frames, count) => {
                write!(formatter, "wait:{frames}")?;
                count
            }
            Item::Group(items, count) => {
                formatter.write_str("(")?;
                write_items(formatter, items)?;
                formatter.write_str(")")?;
                count
            }
        };
        if *count != 1 {
            write!(formatter, "*{count}")?;
        }
    }
    Ok(())
}

fn expand(items: &[Item], steps: &mut Vec<Step>) -> Result<(), ()> {
    for item in items {
        let (count, start) = match item {
            Item::Press(key, count) => {
                steps.push(Step::Press(*key));
                (*count, steps.len() - 1)
            }
            Item::Wait(frames, count) => {
                steps.push(Step::Wait(*frames));
                (*count, steps.len() - 1)
            }
            Item::Group(items, count) => {
                let start = steps.len();
                expand(items, steps)?;
                (*count, start)
            }
        };
        let once = steps.len() - start;
        if steps.len() + once * (count as usize - 1) > MAX_STEPS {
            return Err(());
        }
        for _ in 1..count {
            steps.extend_from_within(start..start + once);
        }
    }
    match steps.len() > MAX_STEPS {
        true => Err(()),
        false => Ok(()),
    }
}

struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    position: usize,
}

impl<'a> Parser<'a> {
    /// Items until the end (at depth 0) or a closing parenthesis.
    fn items(&mut self, depth: usize) -> Result<Vec<Item>, ScriptError> {
        let mut items = Vec::new();
        loop {
            self.skip_blanks();
            match self.peek() {
                None if depth == 0 => return Ok(items),
                None => return Err(self.error("`)` to close the group")),
                Some(')') if depth > 0 => return Ok(items),
                Some(_) => {
                    let item = self.item(depth)?;
                    items.push(item);
                }
            }
        }
    }

    fn item(&mut self, depth: usize) -> Result<Item, ScriptError> {
        let start = self.position;
        let atom = match self.peek() {
            Some('(') => {
                self.position += 1;
                let items = self.items(depth + 1)?;
                self.position += 1; // the `)` that ended the group
                if items.is_empty() {
                    return Err(self.error_at(start, "a key, `wait:N` or `(` inside the group"));
                }
                Item::Group(items, 1)
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let word = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
                if word == "wait" {
                    if self.peek() != Some(':') {
                        return Err(self.error("`:` and a frame count after `wait`"));
                    }
                    self.position += 1;
                    let frames = self.number("a frame count from 1 to", MAX_WAIT_FRAMES)?;
                    Item::Wait(frames, 1)
                } else {
                    let key = word.parse::<Key>().map_err(|_| ScriptError {
                        found: format!("`{word}`"),
                        ..self.error_at(
                            start,
                            "a key (`a b start select up down left right`), `wait:N` or `(`",
                        )
                    })?;
                    Item::Press(key, 1)
                }
            }
            Some(_) => {
                return Err(
                    self.error("a key (`a b start select up down left right`), `wait:N` or `(`")
                );
            }
            None => return Err(self.error("an item")),
        };

        if self.peek() != Some('*') {
            return Ok(atom);
        }
        self.position += 1;
        let count = self.number("a repeat count from 1 to", MAX_REPEAT)?;
        Ok(match atom {
            Item::Press(key, _) => Item::Press(key, count),
            Item::Wait(frames, _) => Item::Wait(frames, count),
            Item::Group(items, _) => Item::Group(items, count),
        })
    }

    /// A decimal number in `1..=max`.
    fn number(&mut self, expected: &str, max: u32) -> Result<u32, ScriptError> {
        let start = self.position;
        let digits = self.take_while(|c| c.is_ascii_digit());
        let expected = format!("{expected} {max}");
        match digits.parse::<u32>() {
            Ok(value) if (1..=max).contains(&value) => Ok(value),
            Ok(_) | Err(_) if !digits.is_empty() => Err(ScriptError {
                found: format!("`{digits}`"),
                ..self.error_at(start, &expected)
            }),
            _ => Err(self.error(&expected)),
        }
    }

    fn skip_blanks(&mut self) {
        loop {
            self.take_while(char::is_whitespace);
            if self.peek() != Some('#') {
                return;
            }
            self.take_while(|c| c != '\n');
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest: &'a str = &self.text[self.position..];
        let length = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.position += length;
        &rest[..length]
    }

    fn peek(&self) -> Option<char> {
        self.text[self.position..].chars().next()
    }

    fn error(&self, expected: &str) -> ScriptError {
        self.error_at(self.position, expected)
    }

    fn error_at(&self, offset: usize, expected: &str) -> ScriptError {
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .chars()
            .count()
            + 1;
        let found = match self.text[offset..].chars().next() {
            None => "the end of the script".to_owned(),
            Some(c) => format!("`{c}`"),
        };
        ScriptError {
            line,
            column,
            expected: expected.to_owned(),
            found,
        }
    }
}
