//! Generates the module tree of the `it` test suite: every `.rs` file under
//! `tests/it/` is compiled in and every file under `tests/scenarios/` is a
//! trial, with nobody writing `mod`.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    gymfleet_harness::build::Layout {
        suite: "it",
        test_dir: "tests/it",
        scenario_dir: "tests/scenarios",
    }
    .generate_or_exit();
}
