//! Builds the Backhaul program's Anchor IDL without anchor-cli and keeps the committed copy honest.
//!
//! ```text
//! cargo run -p backhaul-idl -- write   # regenerate programs/backhaul/idl/backhaul.json
//! cargo run -p backhaul-idl -- check   # exit 1 if the committed file differs from the code
//! cargo run -p backhaul-idl -- print   # print the generated IDL to stdout
//! ```
//!
//! `anchor idl build` (anchor-cli 1.2.2) is a thin wrapper around
//! `anchor_lang_idl::build::IdlBuilder`: the builder runs
//! `cargo test __anchor_private_print_idl --features idl-build` in the program's directory, parses
//! the IDL pieces that test prints between `--- IDL begin … ---` markers, shortens module paths,
//! sorts and verifies the result. This tool calls the same builder with anchor-cli's defaults
//! (account resolution on, lint on, docs on) and serializes with `serde_json::to_string_pretty`
//! (2-space indent), as anchor-cli does, plus a trailing newline.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use anchor_lang_idl::{build::IdlBuilder, serde_json, types::Idl};
use anyhow::{bail, Context, Result};

/// The program, relative to the workspace root.
const PROGRAM_DIR: &str = "programs/backhaul";
/// The committed IDL, relative to the workspace root.
const IDL_FILE: &str = "programs/backhaul/idl/backhaul.json";
const WRITE_CMD: &str = "cargo run -p backhaul-idl -- write";
/// Lines of each side shown when the committed IDL differs.
const HINT_LINES: usize = 12;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let args: Vec<String> = env::args().skip(1).collect();
    let mode = match args.as_slice() {
        [m] if m == "write" || m == "check" || m == "print" => m.as_str(),
        _ => {
            eprintln!("usage: cargo run -p backhaul-idl -- <write|check|print>");
            eprintln!("  write  build the IDL and write {IDL_FILE}");
            eprintln!("  check  build the IDL and fail if {IDL_FILE} differs");
            eprintln!("  print  build the IDL and print it to stdout");
            return Ok(ExitCode::from(2));
        }
    };

    let root = workspace_root()?;
    let idl = build_idl(&root.join(PROGRAM_DIR))?;
    let generated = to_json(&idl)?;
    let idl_path = root.join(IDL_FILE);

    match mode {
        "print" => {
            print!("{generated}");
            Ok(ExitCode::SUCCESS)
        }
        "write" => {
            let unchanged = fs::read_to_string(&idl_path)
                .map(|old| same(&old, &generated))
                .unwrap_or(false);
            if let Some(dir) = idl_path.parent() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            fs::write(&idl_path, &generated)
                .with_context(|| format!("cannot write {}", idl_path.display()))?;
            eprintln!(
                "{IDL_FILE}: {}",
                if unchanged { "unchanged" } else { "written" }
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => check(&idl_path, &generated),
    }
}

/// The workspace root: this crate lives in `<root>/crates/idl-check`.
fn workspace_root() -> Result<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("../..");
    let root = root
        .canonicalize()
        .with_context(|| format!("cannot resolve the workspace root {}", root.display()))?;
    if !root.join(PROGRAM_DIR).join("Cargo.toml").is_file() {
        bail!(
            "{} has no {PROGRAM_DIR}/Cargo.toml; is this the Backhaul workspace?",
            root.display()
        );
    }
    Ok(root)
}

/// Builds the IDL exactly as `anchor idl build -p backhaul` does.
fn build_idl(program_dir: &Path) -> Result<Idl> {
    use_same_toolchain_for_nested_cargo()?;
    eprintln!(
        "building the IDL of {} (cargo test __anchor_private_print_idl --features idl-build)...",
        program_dir.display()
    );
    let started = Instant::now();
    let idl = IdlBuilder::new()
        .program_path(program_dir.to_path_buf())
        // anchor-cli's defaults, with no Anchor.toml `[features]` overriding them.
        .resolution(true)
        .skip_lint(false)
        .no_docs(false)
        // `--lib`: the print test lives in the library; skipping doctests changes nothing in the
        // output. `--locked`: never rewrite Cargo.lock from here.
        .cargo_args(vec!["--lib".into(), "--locked".into()])
        .build()
        .with_context(|| {
            format!(
                "building the IDL of {} failed (compiler output above; rerun with ANCHOR_LOG=1 \
                 to see the test's stdout)",
                program_dir.display()
            )
        })?;
    eprintln!(
        "IDL built in {:.1}s: address {}, {} instructions, {} accounts, {} events, {} errors, \
         {} constants, {} types",
        started.elapsed().as_secs_f64(),
        idl.address,
        idl.instructions.len(),
        idl.accounts.len(),
        idl.events.len(),
        idl.errors.len(),
        idl.constants.len(),
        idl.types.len(),
    );
    Ok(idl)
}

/// `cargo run` hands its child `RUSTUP_TOOLCHAIN`, and anchor-lang-idl 0.1.4 then calls
/// `cargo "+{toolchain}"` (a literal, unformatted string) after trying `rustup toolchain install`,
/// which fails. Drop the variable and instead put the directory of the cargo that runs us first on
/// `PATH`, so the nested cargo (and its rustc) is still the same toolchain.
fn use_same_toolchain_for_nested_cargo() -> Result<()> {
    if env::var_os("RUSTUP_TOOLCHAIN").is_none() {
        return Ok(());
    }
    // Single-threaded at this point, so changing the environment is sound.
    env::remove_var("RUSTUP_TOOLCHAIN");
    let Some(cargo) = env::var_os("CARGO") else {
        return Ok(());
    };
    let Some(bin_dir) = Path::new(&cargo).parent().filter(|d| d.is_dir()) else {
        return Ok(());
    };
    let mut path = vec![bin_dir.to_path_buf()];
    if let Some(old) = env::var_os("PATH") {
        path.extend(env::split_paths(&old));
    }
    let path = env::join_paths(path).context("cannot build PATH for the nested cargo")?;
    env::set_var("PATH", path);
    Ok(())
}

/// `anchor idl build`'s formatting: pretty JSON, 2-space indent; plus a trailing newline.
fn to_json(idl: &Idl) -> Result<String> {
    let mut json = serde_json::to_string_pretty(idl).context("cannot serialize the IDL")?;
    json.push('\n');
    Ok(json)
}

/// Equal up to line endings and trailing newlines (`anchor idl build -o` writes none).
fn same(committed: &str, generated: &str) -> bool {
    normalize(committed) == normalize(generated)
}

fn normalize(s: &str) -> String {
    s.replace("\r\n", "\n").trim_end_matches('\n').to_owned()
}

fn check(idl_path: &Path, generated: &str) -> Result<ExitCode> {
    let committed = match fs::read_to_string(idl_path) {
        Ok(s) => s,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("error: {IDL_FILE} does not exist.");
            eprintln!("run `{WRITE_CMD}` and commit");
            return Ok(ExitCode::FAILURE);
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot read {}", idl_path.display()));
        }
    };
    if same(&committed, generated) {
        eprintln!("{IDL_FILE} matches the program");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("error: {IDL_FILE} does not match the IDL built from the program's code.");
    eprintln!(
        "{}",
        diff_hint(&normalize(&committed), &normalize(generated))
    );
    eprintln!("run `{WRITE_CMD}` and commit");
    eprintln!("(full diff: cargo run -q -p backhaul-idl -- print | diff -u {IDL_FILE} -)");
    Ok(ExitCode::FAILURE)
}

/// The changed block between the common prefix and the common suffix, cut to a few lines.
fn diff_hint(committed: &str, generated: &str) -> String {
    let old: Vec<&str> = committed.lines().collect();
    let new: Vec<&str> = generated.lines().collect();
    let shorter = old.len().min(new.len());
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take(shorter.saturating_sub(prefix))
        .take_while(|(a, b)| a == b)
        .count();
    let old_block = &old[prefix..old.len().saturating_sub(suffix)];
    let new_block = &new[prefix..new.len().saturating_sub(suffix)];

    let mut out = format!(
        "@@ from line {}: {} committed line(s) -> {} generated line(s) @@",
        prefix.saturating_add(1),
        old_block.len(),
        new_block.len()
    );
    for (sign, block) in [('-', old_block), ('+', new_block)] {
        for line in block.iter().take(HINT_LINES) {
            out.push('\n');
            out.push(sign);
            out.push_str(line);
        }
        if block.len() > HINT_LINES {
            out.push_str(&format!(
                "\n{sign} ... {} more line(s)",
                block.len().saturating_sub(HINT_LINES)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_newline_and_crlf_do_not_count() {
        assert!(same("{\n  \"a\": 1\n}", "{\n  \"a\": 1\n}\n"));
        assert!(same("{\r\n  \"a\": 1\r\n}\r\n", "{\n  \"a\": 1\n}\n"));
        assert!(!same("{\n  \"a\": 1\n}\n", "{\n  \"a\": 2\n}\n"));
    }

    #[test]
    fn hint_shows_only_the_changed_block() {
        let old = "a\nb\nc\nd";
        let new = "a\nB\nX\nd";
        let hint = diff_hint(old, new);
        assert_eq!(
            hint,
            "@@ from line 2: 2 committed line(s) -> 2 generated line(s) @@\n-b\n-c\n+B\n+X"
        );
        let hint = diff_hint("a\nb", "a\nb\nc");
        assert_eq!(
            hint,
            "@@ from line 3: 0 committed line(s) -> 1 generated line(s) @@\n+c"
        );
    }
}
