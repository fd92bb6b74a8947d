//! The build-script half of the harness: discovers a suite's files and
//! writes the module tree that compiles them into the test target.
//!
//! Discovery is structural: every `.rs` file under the test directory
//! becomes a module and every file under the scenario directory becomes a
//! trial, whatever they contain. The same pass refuses tests that a
//! `harness = false` target would drop without a word (`#[test]`,
//! `#[tokio::test]`, `proptest!`), naming the file and line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use syn::spanned::Spanned;
use syn::visit::Visit;

/// Where one harness suite lives, relative to the package root.
#[derive(Debug, Clone)]
pub struct Layout<'a> {
    /// The test target's name, which is also its crate name (`it`).
    pub suite: &'a str,
    /// The directory of the target's `main.rs` and of every test module.
    pub test_dir: &'a str,
    /// The directory whose every file is a scenario trial; it may be
    /// missing.
    pub scenario_dir: &'a str,
}

/// Why a suite's module tree could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An environment variable that cargo sets for build scripts is missing.
    #[error("`{0}` is not set: call this from a build script")]
    NotInBuildScript(&'static str),
    /// A file or directory could not be read or written.
    #[error("cannot access `{path}`")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The files are laid out in a way the harness refuses.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Layout(Vec<Problem>),
}

/// One thing wrong with a suite's files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A file or directory name cannot be a Rust module name.
    #[error("`{path}`: `{stem}` is not a Rust identifier, so it cannot be a module; rename it")]
    NotAnIdentifier {
        /// The offending path, relative to the package root.
        path: String,
        /// The name that is not an identifier.
        stem: String,
    },
    /// A `mod.rs` file, whose `mod` items would fight the generated tree.
    #[error(
        "`{path}`: `mod.rs` files are not used by the harness, which declares every module \
         itself; move its contents to a sibling file named after the directory's tests"
    )]
    ModRs {
        /// The offending path, relative to the package root.
        path: String,
    },
    /// Both `foo.rs` and a directory `foo/` of modules.
    #[error("`{path}` and the directory beside it of the same name cannot both be modules")]
    FileAndDirectory {
        /// The file, relative to the package root.
        path: String,
    },
    /// A test that a `harness = false` target would silently never run.
    #[error(
        "{path}:{line}: `{what}` never runs in a `harness = false` target; use \
         `#[gymfleet_harness::test]` (with `gymfleet_harness::prop::check` for a property test)"
    )]
    UnregisteredTest {
        /// The file, relative to the package root.
        path: String,
        /// The line of the attribute or macro.
        line: usize,
        /// What was written, such as `#[test]` or `proptest!`.
        what: String,
    },
    /// A scenario name that would make an awkward trial name.
    #[error(
        "`{path}`: scenario names may use only ASCII letters, digits, `_`, `-` and `.`, \
         so that the trial name can be passed to `--exact`"
    )]
    ScenarioName {
        /// The offending path, relative to the package root.
        path: String,
    },
    /// Two scenario files that differ only by extension.
    #[error("`{first}` and `{second}` would both be the trial `scenario::{name}`")]
    DuplicateScenario {
        /// The first file.
        first: String,
        /// The second file.
        second: String,
        /// The trial name both would take.
        name: String,
    },
}

impl Layout<'_> {
    /// Writes `$OUT_DIR/gymfleet-harness/<suite>.rs` and tells cargo to
    /// run the build script again when a file is added, removed or changed
    /// in either directory.
    ///
    /// The file declares every module with an absolute `#[path]` and a
    /// `static SUITE: gymfleet_harness::Suite` that the target's `main`
    /// passes to `gymfleet_harness::run`.
    pub fn generate(&self) -> Result<PathBuf, Error> {
        let package_root = env_path("CARGO_MANIFEST_DIR")?;
        let out_dir = env_path("OUT_DIR")?;
        println!("cargo::rerun-if-changed={}", self.test_dir);
        println!("cargo::rerun-if-changed={}", self.scenario_dir);

        let discovered = self.discover(&package_root)?;
        let source = self.render(&discovered);

        let target = out_dir
            .join("gymfleet-harness")
            .join(format!("{}.rs", self.suite));
        let parent = target
            .parent()
            .expect("the target path has a parent directory");
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_owned(),
            source,
        })?;
        let unchanged = std::fs::read_to_string(&target).is_ok_and(|old| old == source);
        if !unchanged {
            std::fs::write(&target, source).map_err(|source| Error::Io {
                path: target.clone(),
                source,
            })?;
        }
        Ok(target)
    }

    /// Like [`generate`](Self::generate), but prints the error and exits,
    /// which is what a build script wants.
    pub fn generate_or_exit(&self) {
        if let Err(error) = self.generate() {
            eprintln!("error: cannot generate the test suite `{}`:", self.suite);
            match &error {
                Error::Layout(problems) => {
                    for problem in problems {
                        eprintln!("  {problem}");
                    }
                }
                error => {
                    let mut source: Option<&dyn std::error::Error> = Some(error);
                    while let Some(error) = source {
                        eprintln!("  {error}");
                        source = error.source();
                    }
                }
            }
            std::process::exit(1);
        }
    }

    fn discover(&self, package_root: &Path) -> Result<Discovered, Error> {
        let mut problems = Vec::new();
        let mut modules = Vec::new();
        let test_dir = package_root.join(self.test_dir);
        collect_modules(&test_dir, self.test_dir, &[], &mut modules, &mut problems)?;
        for module in &modules {
            let source = std::fs::read_to_string(&module.absolute).map_err(|source| Error::Io {
                path: module.absolute.clone(),
                source,
            })?;
            problems.extend(unregistered_tests(&module.relative, &source));
        }

        let mut scenarios = Vec::new();
        let scenario_dir = package_root.join(self.scenario_dir);
        if scenario_dir.is_dir() {
            collect_scenarios(
                &scenario_dir,
                self.scenario_dir,
                "",
                &mut scenarios,
                &mut problems,
            )?;
        }
        scenarios.sort_by(|a: &Scenario, b| a.name.cmp(&b.name));
        for pair in scenarios.windows(2) {
            if pair[0].name == pair[1].name {
                problems.push(Problem::DuplicateScenario {
                    first: pair[0].relative.clone(),
                    second: pair[1].relative.clone(),
                    name: pair[0].name.replace('/', "::"),
                });
            }
        }

        match problems.is_empty() {
            true => Ok(Discovered { modules, scenarios }),
            false => Err(Error::Layout(problems)),
        }
    }

    fn render(&self, discovered: &Discovered) -> String {
        let mut tree = Tree::default();
        for module in &discovered.modules {
            tree.insert(&module.segments, &module.absolute);
        }

        let mut source = String::from(
            "// Generated by gymfleet-harness from the files of the test directory.\n",
        );
        tree.render(&mut source, 0);
        let _ = writeln!(
            source,
            "\nstatic SUITE: ::gymfleet_harness::Suite = ::gymfleet_harness::Suite {{"
        );
        let _ = writeln!(source, "    crate_name: {:?},", self.suite);
        let _ = writeln!(source, "    test_dir: {:?},", self.test_dir);
        source.push_str("    modules: &[\n");
        for module in &discovered.modules {
            let _ = writeln!(
                source,
                "        ::gymfleet_harness::ModuleFile {{ module_path: {:?}, path: {:?} }},",
                module.segments.join("::"),
                module.relative,
            );
        }
        source.push_str("    ],\n");
        let _ = writeln!(source, "    scenario_dir: {:?},", self.scenario_dir);
        source.push_str("    scenarios: &[\n");
        for scenario in &discovered.scenarios {
            let _ = writeln!(
                source,
                "        ::gymfleet_harness::ScenarioFile {{ name: {:?}, path: {:?} }},",
                scenario.name, scenario.relative,
            );
        }
        source.push_str("    ],\n};\n");
        source
    }
}

struct Discovered {
    modules: Vec<Module>,
    scenarios: Vec<Scenario>,
}

struct Module {
    segments: Vec<String>,
    relative: String,
    absolute: PathBuf,
}

struct Scenario {
    name: String,
    relative: String,
}

/// Modules to declare, nested as directories nest.
#[derive(Default)]
struct Tree {
    children: BTreeMap<String, TreeNode>,
}

enum TreeNode {
    File(PathBuf),
    Directory(Tree),
}

impl Tree {
    fn insert(&mut self, segments: &[String], absolute: &Path) {
        match segments {
            [] => {}
            [leaf] => {
                self.children
                    .insert(leaf.clone(), TreeNode::File(absolute.to_owned()));
            }
            [directory, rest @ ..] => {
                let node = self
                    .children
                    .entry(directory.clone())
                    .or_insert_with(|| TreeNode::Directory(Tree::default()));
                if let TreeNode::Directory(tree) = node {
                    tree.insert(rest, absolute);
                }
            }
        }
    }

    fn render(&self, source: &mut String, depth: usize) {
        let indent = "    ".repeat(depth);
        for (name, node) in &self.children {
            match node {
                TreeNode::File(path) => {
                    let _ = writeln!(source, "{indent}#[path = {:?}]", path.display().to_string());
                    let _ = writeln!(source, "{indent}mod {name};");
                }
                TreeNode::Directory(tree) => {
                    let _ = writeln!(source, "{indent}mod {name} {{");
                    tree.render(source, depth + 1);
                    let _ = writeln!(source, "{indent}}}");
                }
            }
        }
    }
}

fn env_path(variable: &'static str) -> Result<PathBuf, Error> {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .ok_or(Error::NotInBuildScript(variable))
}

/// Lists a directory's entries sorted by name, so the generated file does
/// not depend on the file system's order.
fn sorted_entries(directory: &Path) -> Result<Vec<std::fs::DirEntry>, Error> {
    let io_error = |source| Error::Io {
        path: directory.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(directory)
        .map_err(io_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error)?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    Ok(entries)
}

fn collect_modules(
    directory: &Path,
    relative: &str,
    segments: &[String],
    modules: &mut Vec<Module>,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let entries = sorted_entries(directory)?;
    let names: Vec<String> = entries
        .iter()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();

    for (entry, name) in entries.iter().zip(&names) {
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let relative_path = format!("{relative}/{name}");
        if path.is_dir() {
            if !contains_rust_files(&path)? {
                continue;
            }
            if names.iter().any(|other| *other == format!("{name}.rs")) {
                problems.push(Problem::FileAndDirectory {
                    path: format!("{relative_path}.rs"),
                });
                continue;
            }
            if !is_identifier(name) {
                problems.push(Problem::NotAnIdentifier {
                    path: relative_path,
                    stem: name.clone(),
                });
                continue;
            }
            let mut nested = segments.to_vec();
            nested.push(name.clone());
            collect_modules(&path, &relative_path, &nested, modules, problems)?;
            continue;
        }

        let Some(stem) = name.strip_suffix(".rs") else {
            continue;
        };
        if segments.is_empty() && stem == "main" {
            continue;
        }
        if stem == "mod" {
            problems.push(Problem::ModRs {
                path: relative_path,
            });
            continue;
        }
        if !is_identifier(stem) {
            problems.push(Problem::NotAnIdentifier {
                path: relative_path,
                stem: stem.to_owned(),
            });
            continue;
        }
        let mut module_segments = segments.to_vec();
        module_segments.push(stem.to_owned());
        modules.push(Module {
            segments: module_segments,
            relative: relative_path,
            absolute: path,
        });
    }
    Ok(())
}

fn contains_rust_files(directory: &Path) -> Result<bool, Error> {
    for entry in sorted_entries(directory)? {
        let path = entry.path();
        let is_rust = path.extension().is_some_and(|extension| extension == "rs");
        if is_rust || (path.is_dir() && contains_rust_files(&path)?) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn collect_scenarios(
    directory: &Path,
    relative: &str,
    prefix: &str,
    scenarios: &mut Vec<Scenario>,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    for entry in sorted_entries(directory)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let relative_path = format!("{relative}/{name}");
        let allowed = |text: &str| {
            !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        if !allowed(&name) {
            problems.push(Problem::ScenarioName {
                path: relative_path,
            });
            continue;
        }
        if path.is_dir() {
            let nested = format!("{prefix}{name}/");
            collect_scenarios(&path, &relative_path, &nested, scenarios, problems)?;
            continue;
        }
        let stem = match name.rsplit_once('.') {
            Some((stem, _extension)) if !stem.is_empty() => stem,
            _ => name.as_str(),
        };
        scenarios.push(Scenario {
            name: format!("{prefix}{stem}"),
            relative: relative_path,
        });
    }
    Ok(())
}

fn is_identifier(name: &str) -> bool {
    syn::parse_str::<syn::Ident>(name).is_ok()
}

/// Finds tests in one file that a `harness = false` target would drop.
///
/// A file that does not parse yields nothing here: rustc reports its
/// syntax error with better context than a build script could.
fn unregistered_tests(relative: &str, source: &str) -> Vec<Problem> {
    let Ok(file) = syn::parse_file(source) else {
        return Vec::new();
    };
    let mut finder = UnregisteredTests {
        relative,
        problems: Vec::new(),
    };
    finder.visit_file(&file);
    finder.problems
}

struct UnregisteredTests<'a> {
    relative: &'a str,
    problems: Vec<Problem>,
}

impl<'ast> Visit<'ast> for UnregisteredTests<'_> {
    fn visit_attribute(&mut self, attribute: &'ast syn::Attribute) {
        let segments: Vec<String> = attribute
            .path()
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect();
        let first = segments.first().map(String::as_str);
        let last = segments.last().map(String::as_str);
        let is_harness = first == Some("gymfleet_harness");
        let drops = match (segments.len(), last) {
            (1, Some("test" | "bench" | "rstest" | "quickcheck" | "test_case")) => true,
            (_, Some("test" | "rstest" | "test_case")) => !is_harness,
            _ => false,
        };
        if drops {
            self.problems.push(Problem::UnregisteredTest {
                path: self.relative.to_owned(),
                line: attribute.span().start().line,
                what: format!("#[{}]", segments.join("::")),
            });
        }
        syn::visit::visit_attribute(self, attribute);
    }

    fn visit_macro(&mut self, invocation: &'ast syn::Macro) {
        let last = invocation
            .path
            .segments
            .last()
            .map(|segment| segment.ident.to_string());
        if matches!(last.as_deref(), Some("proptest" | "quickcheck")) {
            self.problems.push(Problem::UnregisteredTest {
                path: self.relative.to_owned(),
                line: invocation.path.span().start().line,
                what: format!("{}!", last.unwrap_or_default()),
            });
        }
        syn::visit::visit_macro(self, invocation);
    }
}
