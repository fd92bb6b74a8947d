//! Runs cargo and cargo-nextest on the fixture crates, in a target
//! directory of their own and with an environment free of the outer run's
//! cargo and nextest variables.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The fixture workspace.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The target directory every fixture build shares, so that dependencies
/// are compiled once.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures")
}

/// What a finished command printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub description: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole output unless the command succeeded.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.succeeded(),
            "`{}` failed:\n{}",
            self.description,
            self.transcript()
        );
        self
    }

    /// Panics with the whole output unless the command failed.
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.succeeded(),
            "`{}` succeeded but must fail:\n{}",
            self.description,
            self.transcript()
        );
        self
    }

    /// Panics unless stdout or stderr contains `needle`.
    pub fn assert_output_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "the output of `{}` does not contain {needle:?}:\n{}",
            self.description,
            self.transcript()
        );
        self
    }

    /// Panics if stdout or stderr contains `needle`.
    pub fn assert_output_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stdout.contains(needle) && !self.stderr.contains(needle),
            "the output of `{}` contains {needle:?}:\n{}",
            self.description,
            self.transcript()
        );
        self
    }

    pub fn transcript(&self) -> String {
        format!(
            "exit code: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A command on the fixtures, with a clean environment.
pub struct Invocation {
    command: Command,
    description: String,
}

impl Invocation {
    /// `cargo ARGS` in `workspace`.
    pub fn cargo(workspace: &Path, args: &[&str]) -> Invocation {
        Invocation::program(Path::new("cargo"), args, workspace)
    }

    /// Any program, in `current_dir`.
    pub fn program(program: &Path, args: &[&str], current_dir: &Path) -> Invocation {
        let mut command = Command::new(program);
        command.args(args).current_dir(current_dir);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            let inherited_from_outer_run = (key_text.starts_with("CARGO")
                && key_text != "CARGO_HOME")
                || key_text.starts_with("NEXTEST")
                || key_text.starts_with("__NEXTEST")
                || key_text == "RUST_TEST_THREADS"
                || key_text.contains("MAKEFLAGS");
            if inherited_from_outer_run {
                command.env_remove(&key);
            }
        }
        command
            .env("CARGO_TARGET_DIR", target_dir())
            .env("RUST_BACKTRACE", "0");
        let description = format!("{} {}", program.display(), args.join(" "));
        Invocation {
            command,
            description,
        }
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Invocation {
        self.command.env(key, value);
        self
    }

    pub fn run(mut self) -> Run {
        let output = self
            .command
            .output()
            .unwrap_or_else(|error| panic!("cannot start `{}`: {error}", self.description));
        Run {
            description: self.description,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// `cargo ARGS` in the fixture workspace.
pub fn cargo(args: &[&str]) -> Run {
    Invocation::cargo(&fixtures(), args).run()
}

/// The `gymfleet-harness` binary of this package.
pub fn harness_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gymfleet-harness"))
}

/// A fresh directory under the target directory, unique in this run.
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scratch")
        .join(format!(
            "{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("the scratch directory can be created");
    directory
}

/// Copies one fixture crate into a workspace of its own, so that a test
/// can add or change files without touching the repository.
///
/// The copy's package is renamed `<crate_name>-<purpose>`: the shared
/// target directory names artifacts by package, not by path, so a copy
/// under the original name would overwrite the original's binaries.
/// Returns the workspace and the package name.
pub fn copy_fixture(crate_name: &str, purpose: &str) -> (PathBuf, String) {
    let package = format!("{crate_name}-{purpose}");
    let workspace = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("copies")
        .join(&package);
    let _ = std::fs::remove_dir_all(&workspace);
    copy_tree(&fixtures().join(crate_name), &workspace.join(crate_name));
    copy_tree(&fixtures().join(".config"), &workspace.join(".config"));
    std::fs::copy(fixtures().join("Cargo.lock"), workspace.join("Cargo.lock"))
        .expect("the fixture lock file can be copied");

    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).display().to_string();
    let original = std::fs::read_to_string(fixtures().join("Cargo.toml"))
        .expect("the fixture workspace manifest is readable");
    let mut workspace_manifest = Vec::new();
    let mut in_members = false;
    for line in original.lines() {
        if line.starts_with("members = [") {
            workspace_manifest.push(format!("members = [{crate_name:?}]"));
            in_members = !line.ends_with(']');
        } else if in_members {
            in_members = line.trim() != "]";
        } else {
            workspace_manifest
                .push(line.replace("path = \"../..\"", &format!("path = {harness:?}")));
        }
    }
    let workspace_manifest = workspace_manifest.join("\n");
    std::fs::write(workspace.join("Cargo.toml"), workspace_manifest)
        .expect("the workspace manifest can be written");

    let package_manifest_path = workspace.join(crate_name).join("Cargo.toml");
    let package_manifest = std::fs::read_to_string(&package_manifest_path)
        .expect("the copied manifest is readable")
        .replace(
            &format!("name = {crate_name:?}"),
            &format!("name = {package:?}"),
        );
    std::fs::write(&package_manifest_path, package_manifest)
        .expect("the package manifest can be written");
    (workspace, package)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("the copy's directory can be created");
    for entry in std::fs::read_dir(from).expect("the fixture directory is readable") {
        let entry = entry.expect("the fixture directory is readable");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("the fixture file can be copied");
        }
    }
}

/// Lists the `harness-suite` binary of `workspace` with extra arguments.
pub fn list(workspace: &Path, extra: &[&str]) -> (Run, BTreeSet<String>) {
    let mut args = vec![
        "test",
        "-q",
        "-p",
        "harness-suite",
        "--test",
        "it",
        "--",
        "--list",
        "--format",
        "terse",
    ];
    args.extend(extra);
    let run = Invocation::cargo(workspace, &args).run();
    run.assert_success();
    let names = run
        .stdout
        .lines()
        .map(|line| {
            line.strip_suffix(": test")
                .unwrap_or_else(|| panic!("not a test line: {line:?}"))
        })
        .map(str::to_owned)
        .collect();
    (run, names)
}
