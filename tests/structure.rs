//! The code's own shape, checked so it cannot drift (docs/ARCHITECTURE.md, "Files a
//! newcomer can read"): no function in the libraries or the binary is longer than
//! `FN_LINES_MAX` lines unless a `// Long:` comment right above it says why.

use std::path::{Path, PathBuf};

/// Lines from `fn` to its closing brace.
const FN_LINES_MAX: usize = 70;

/// Functions over the limit with no reason yet, each to be split (none today).
const KNOWN_DEBT: [(&str, &str); 0] = [];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The name of the function a line declares, if it starts one (not a signature in a
/// trait, which ends in `;`).
fn declares(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for prefix in ["pub(crate) ", "pub(super) ", "pub ", "async ", "const ", "unsafe "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    let name = rest.strip_prefix("fn ")?;
    let end = name.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    (!line.trim_end().ends_with(';')).then_some(&name[..end])
}

/// Every function over the limit in `text`: (name, first line, length, has a reason).
fn long_functions(text: &str) -> Vec<(String, usize, usize, bool)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = declares(line) else { continue };
        let indent = line.len() - line.trim_start().len();
        let close = " ".repeat(indent) + "}";
        // The body ends at the first line holding only a brace at the fn's indentation.
        let Some(len) = lines[i..].iter().position(|l| l.trim_end() == close).map(|k| k + 1) else {
            continue;
        };
        let reason = lines[i.saturating_sub(8)..i]
            .iter()
            .any(|l| l.trim_start().starts_with("// Long: "));
        if len > FN_LINES_MAX {
            out.push((name.to_string(), i + 1, len, reason));
        }
    }
    out
}

#[test]
fn no_function_is_long_without_a_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&root.join("node/src"), &mut files);
    for e in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = e.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut problems = Vec::new();
    let mut reasons = 0;
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        for (name, line, len, reason) in long_functions(&std::fs::read_to_string(f).unwrap()) {
            let debt = KNOWN_DEBT.contains(&(rel.as_str(), name.as_str()));
            match (reason, debt) {
                (true, true) => problems.push(format!("{rel}: {name} has a reason: take it off KNOWN_DEBT")),
                (true, false) => reasons += 1,
                (false, true) => {}
                (false, false) => problems.push(format!(
                    "{rel}:{line}: {name} is {len} lines: split it, or say why above it (`// Long: ...`)"
                )),
            }
        }
    }
    assert!(
        reasons > 0,
        "the scan found no long function at all: is it reading the sources?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scan_measures_what_it_should() {
    let body = |n: usize| "    x();\n".repeat(n);
    let short = format!("fn short() {{\n{}}}\n", body(60));
    let long = format!("pub(crate) fn long() {{\n{}}}\n", body(80));
    let excused = format!("// Long: a table.\nfn excused() {{\n{}}}\n", body(80));
    let trait_sig = "    fn sig(&self) -> u32;\n";
    let found = long_functions(&format!("{short}{long}{excused}{trait_sig}"));
    let names: Vec<(&str, bool)> = found.iter().map(|(n, _, _, r)| (n.as_str(), *r)).collect();
    assert_eq!(names, [("long", false), ("excused", true)]);
    assert_eq!(found[0].2, 82);
}
