//! Builds the Backhaul program's Anchor IDL without anchor-cli and keeps the committed copy honest.
//!
//! ```text
//! cargo run -p backhaul-idl -- write   # regenerate programs/backhaul/idl/backhaul.json
//! cargo run -p backhaul-idl -- check   # exit 1 if the committed file differs from the code, or
//!                                      # if the IDL lacks an account type, event or PDA seeds
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
//!
//! Two things Anchor's builder leaves out are then added (see [`complete`]): the account types
//! the program creates by hand, which the program itself lists (the test
//! `state::idl_build::print_account_types`, run with the same features and environment, so
//! nothing is compiled twice), and the seeds and address of the event CPI accounts. Finally the
//! IDL must hold what a client needs (see [`rules`]): every `#[account]` type of the state
//! module, every event, and seeds for every PDA that an instruction takes.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::Instant,
};

use anchor_lang_idl::{build::IdlBuilder, serde_json, types::Idl};
use anyhow::{bail, Context, Result};

mod complete;
mod rules;

use complete::AccountTypes;
use rules::ProgramSource;

/// The program, relative to the workspace root.
const PROGRAM_DIR: &str = "programs/backhaul";
/// The committed IDL, relative to the workspace root.
const IDL_FILE: &str = "programs/backhaul/idl/backhaul.json";
const WRITE_CMD: &str = "cargo run -p backhaul-idl -- write";
/// The program's test that prints its account types, and the lines around its output.
const ACCOUNT_TYPES_TEST: &str = "state::idl_build::print_account_types";
const ACCOUNT_TYPES_BEGIN: &str = "--- backhaul-idl account types begin ---";
const ACCOUNT_TYPES_END: &str = "--- backhaul-idl account types end ---";
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
            eprintln!(
                "  check  build the IDL and fail if {IDL_FILE} differs or lacks an account \
                 type, an event or PDA seeds"
            );
            eprintln!("  print  build the IDL and print it to stdout");
            return Ok(ExitCode::from(2));
        }
    };

    let root = workspace_root()?;
    let program_dir = root.join(PROGRAM_DIR);
    let idl = build_idl(&program_dir)?;
    let idl = complete::complete(idl, program_account_types(&program_dir)?)?;
    let generated = to_json(&idl)?;
    let idl_path = root.join(IDL_FILE);
    let problems = rules::problems(&idl, &ProgramSource::read(&root)?);
    eprintln!(
        "with the program's own account types: {} accounts, {} types",
        idl.accounts.len(),
        idl.types.len()
    );

    match mode {
        "print" => {
            print!("{generated}");
            report(&problems);
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
            Ok(if report(&problems) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        _ => {
            let matches = check(&idl_path, &generated)?;
            let complete = report(&problems);
            Ok(if matches && complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Prints each problem; `true` when there is none.
fn report(problems: &[String]) -> bool {
    for problem in problems {
        eprintln!("error: {problem}");
    }
    if problems.is_empty() {
        eprintln!("the IDL lists every account type, every event and the seeds of every PDA");
    }
    problems.is_empty()
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

/// The program's own list of its account types (see [`complete`]): its test
/// [`ACCOUNT_TYPES_TEST`], built with exactly the features, flags and environment of
/// [`build_idl`]'s test run, so that cargo only runs the test binary it already built.
fn program_account_types(program_dir: &Path) -> Result<AccountTypes> {
    let output = Command::new("cargo")
        .args(["test", "--features", "idl-build", "--lib", "--locked"])
        .args([
            ACCOUNT_TYPES_TEST,
            "--",
            "--exact",
            "--nocapture",
            "--quiet",
        ])
        .env("ANCHOR_IDL_BUILD_NO_DOCS", "FALSE")
        .env("ANCHOR_IDL_BUILD_RESOLUTION", "TRUE")
        .env("ANCHOR_IDL_BUILD_SKIP_LINT", "FALSE")
        .env("ANCHOR_IDL_BUILD_PROGRAM_PATH", program_dir)
        .env("RUSTFLAGS", "-A warnings")
        .current_dir(program_dir)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo for the program's account types")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "the program's test `{ACCOUNT_TYPES_TEST}` failed (output above and here):\n{stdout}"
        );
    }
    AccountTypes::from_output(&stdout, ACCOUNT_TYPES_BEGIN, ACCOUNT_TYPES_END).with_context(|| {
        format!("the program's test `{ACCOUNT_TYPES_TEST}` printed no account types:\n{stdout}")
    })
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

/// Compares the committed IDL with `generated`; `true` when they match.
fn check(idl_path: &Path, generated: &str) -> Result<bool> {
    let committed = match fs::read_to_string(idl_path) {
        Ok(s) => s,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("error: {IDL_FILE} does not exist.");
            eprintln!("run `{WRITE_CMD}` and commit");
            return Ok(false);
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot read {}", idl_path.display()));
        }
    };
    if same(&committed, generated) {
        eprintln!("{IDL_FILE} matches the program");
        return Ok(true);
    }
    eprintln!("error: {IDL_FILE} does not match the IDL built from the program's code.");
    eprintln!(
        "{}",
        diff_hint(&normalize(&committed), &normalize(generated))
    );
    eprintln!("run `{WRITE_CMD}` and commit");
    eprintln!("(full diff: cargo run -q -p backhaul-idl -- print | diff -u {IDL_FILE} -)");
    Ok(false)
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
