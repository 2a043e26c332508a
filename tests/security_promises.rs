//! Every test that `SECURITY.md` names as the proof of a promise exists: a renamed or deleted
//! test would leave a promise that nothing checks.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// The test names cited in backticks: the last `::` segment of `a::b::name`, or a bare
/// snake_case name of at least four words (the project's tests read as sentences).
fn cited(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        let last = span.rsplit("::").next().unwrap_or(span);
        let words = last.split('_').count();
        let looks_like_a_test = last
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && words >= 4
            && !last.contains('.');
        if looks_like_a_test && (span.contains("::") || words >= 5) {
            names.push(last.trim_end_matches('*').to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_test_security_md_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("SECURITY.md")).expect("SECURITY.md");
    let mut files = Vec::new();
    for dir in ["programs", "crates", "oracle", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    let sources: Vec<String> = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect();
    let names = cited(&text);
    assert!(names.len() >= 20, "SECURITY.md cites {} tests", names.len());
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| {
            let f = format!("fn {n}(");
            !sources.iter().any(|s| s.contains(&f))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "SECURITY.md names tests that do not exist: {missing:?}"
    );
}
