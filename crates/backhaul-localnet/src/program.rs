//! Which build of the Backhaul program a bank runs.
//!
//! By default the real SBF bytecode, `backhaul.so`, as `cargo build-sbf` (or
//! `scripts/build-sbf.sh`) writes it: the program then runs in the SBF virtual machine with its
//! compute units, stack frames and heap counted as on a cluster. The host build (the program
//! compiled into the test process and registered as a builtin) stays available for debugging, by
//! asking for it explicitly with `BACKHAUL_PROGRAM=host`; nothing falls back to it silently.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use solana_program_test::{processor, ProgramTest};
use solana_sdk::account::Account;
use solana_sdk::account_info::AccountInfo;
use solana_sdk::entrypoint::ProgramResult;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::rent::Rent;

/// Environment variable choosing the build: `host`, or a path to a `.so` file.
pub const PROGRAM_ENV: &str = "BACKHAUL_PROGRAM";
/// The folder holding `backhaul.so` when [`PROGRAM_ENV`] is unset (the Solana tools' convention).
pub const SBF_OUT_DIR_ENV: &str = "SBF_OUT_DIR";
/// The bytecode's file name.
pub const SO_NAME: &str = "backhaul.so";
/// What builds the bytecode, for error messages.
pub const BUILD_HINT: &str = "build it with `scripts/build-sbf.sh` (uses `cargo build-sbf` when \
     the Solana toolchain is installed, otherwise the toolchain named by BACKHAUL_SBF_TOOLCHAIN), \
     or set BACKHAUL_PROGRAM=host to run the host build for debugging";

/// The program a bank loads at [`backhaul::ID`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramBuild {
    /// SBF bytecode read from this file, executed by the SBF virtual machine.
    Bytecode(PathBuf),
    /// The program compiled for the host and registered as a builtin (compute units of the
    /// Backhaul program itself are not counted).
    Host,
}

impl ProgramBuild {
    /// The build the environment asks for: [`PROGRAM_ENV`] (`host` or a path), otherwise the
    /// bytecode at [`default_bytecode_path`]. Fails, saying how to build it, when that file is
    /// missing.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var_os(PROGRAM_ENV) {
            Some(v) if v == "host" => Ok(Self::Host),
            Some(v) if !v.is_empty() => Self::bytecode_at(PathBuf::from(v)),
            _ => Self::bytecode_at(default_bytecode_path()),
        }
    }

    /// Like [`ProgramBuild::from_env`], but the host build when no bytecode was built and the
    /// environment names none (for the demo, which must run with the Rust toolchain alone).
    /// The caller should say which one it got ([`ProgramBuild::describe`]).
    pub fn from_env_or_host() -> anyhow::Result<Self> {
        match std::env::var_os(PROGRAM_ENV) {
            Some(v) if !v.is_empty() => Self::from_env(),
            _ => {
                let path = default_bytecode_path();
                if path.is_file() {
                    Ok(Self::Bytecode(path))
                } else {
                    Ok(Self::Host)
                }
            }
        }
    }

    fn bytecode_at(path: PathBuf) -> anyhow::Result<Self> {
        if path.is_file() {
            if let Some(newer) = newer_source(&path, &workspace_root()) {
                anyhow::bail!(
                    "the program's SBF bytecode {} is older than {}: rebuild it with \
                     `scripts/build-sbf.sh` (or set BACKHAUL_PROGRAM=host to run the host build)",
                    path.display(),
                    newer.display()
                );
            }
            Ok(Self::Bytecode(path))
        } else {
            anyhow::bail!(
                "the program's SBF bytecode {} does not exist: {BUILD_HINT}",
                path.display()
            )
        }
    }

    /// Whether the program runs as bytecode (its compute units are then real).
    pub fn is_bytecode(&self) -> bool {
        matches!(self, Self::Bytecode(_))
    }

    /// One line for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Bytecode(p) => format!("SBF bytecode {}", p.display()),
            Self::Host => "host build (compute units of the program are not counted)".into(),
        }
    }

    /// Registers the program with `pt` at [`backhaul::ID`].
    pub fn add_to(&self, pt: &mut ProgramTest) -> anyhow::Result<()> {
        match self {
            Self::Host => {
                pt.prefer_bpf(false);
                pt.add_program("backhaul", backhaul::ID, processor!(entry));
            }
            Self::Bytecode(path) => {
                let elf = read_elf(path)?;
                pt.prefer_bpf(true);
                // Owned by the (non-upgradeable) BPF loader, as solana-program-test loads
                // programs; the upgrade authority lives in the ProgramData account the caller
                // adds, which is what the program reads.
                pt.add_account(
                    backhaul::ID,
                    Account {
                        lamports: Rent::default().minimum_balance(elf.len()).max(1),
                        data: elf,
                        owner: solana_sdk::bpf_loader::id(),
                        executable: true,
                        rent_epoch: 0,
                    },
                );
            }
        }
        Ok(())
    }
}

/// `SBF_OUT_DIR/backhaul.so`, or `target/deploy/backhaul.so` in the workspace.
pub fn default_bytecode_path() -> PathBuf {
    match std::env::var_os(SBF_OUT_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(SO_NAME),
        _ => workspace_root().join("target").join("deploy").join(SO_NAME),
    }
}

/// The workspace this crate was built in.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The program's sources (its crate and the pure crate it is built from), when this is a
/// checkout of the workspace.
const SOURCE_DIRS: [&str; 2] = ["programs/backhaul", "crates/backhaul-core"];

/// A source file of the program modified after `bytecode` was written, if any: tests must not run
/// yesterday's program against today's code.
fn newer_source(bytecode: &Path, root: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(bytecode)
        .and_then(|m| m.modified())
        .ok()?;
    let mut stack: Vec<PathBuf> = SOURCE_DIRS.iter().map(|d| root.join(d)).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if path
                    .file_name()
                    .is_some_and(|n| n != "target" && n != "idl")
                {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs" || e == "toml")
                && meta.modified().is_ok_and(|m| m > built)
            {
                return Some(path);
            }
        }
    }
    None
}

/// Reads an ELF file, refusing anything that is not one.
pub fn read_elf(path: &Path) -> anyhow::Result<Vec<u8>> {
    let elf = std::fs::read(path)
        .with_context(|| format!("reading the program's bytecode {}", path.display()))?;
    anyhow::ensure!(
        elf.starts_with(b"\x7fELF"),
        "{} is not an ELF file: {BUILD_HINT}",
        path.display()
    );
    Ok(elf)
}

/// The host build's entry point, for solana-program-test's builtin registration.
pub fn entry(program_id: &Pubkey, accounts: &[AccountInfo], data: &[u8]) -> ProgramResult {
    // Anchor's entry wants `&'info [AccountInfo<'info>]`; program-test hands a shorter lifetime.
    // SAFETY: the accounts outlive the call; only the lifetime parameter is widened.
    let accounts: &[AccountInfo] = unsafe { std::mem::transmute(accounts) };
    backhaul::entry(program_id, accounts, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_path_is_the_workspace_deploy_folder() {
        if std::env::var_os(SBF_OUT_DIR_ENV).is_none() {
            let p = default_bytecode_path();
            assert!(p.ends_with("target/deploy/backhaul.so"), "{}", p.display());
            assert!(p
                .parent()
                .and_then(Path::parent)
                .is_some_and(|t| t.parent().is_some_and(|ws| ws.join("Cargo.toml").is_file())));
        }
    }

    #[test]
    fn a_missing_file_is_refused_with_the_way_to_build_it() {
        let err = ProgramBuild::bytecode_at(PathBuf::from("/nonexistent/backhaul.so"))
            .expect_err("missing file");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/backhaul.so"), "{msg}");
        assert!(msg.contains("scripts/build-sbf.sh"), "{msg}");
        assert!(msg.contains("BACKHAUL_PROGRAM=host"), "{msg}");
    }

    #[test]
    fn bytecode_older_than_a_source_file_is_refused() {
        let ws = tempfile::tempdir().expect("tempdir");
        let src = ws.path().join("programs/backhaul/src");
        std::fs::create_dir_all(&src).expect("mkdir");
        let so = ws.path().join(SO_NAME);
        std::fs::write(&so, b"\x7fELF").expect("write");
        let lib = src.join("lib.rs");
        std::fs::write(&lib, b"// source").expect("write");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&so)
            .and_then(|f| f.set_modified(old))
            .expect("age the bytecode");
        assert_eq!(newer_source(&so, ws.path()), Some(lib.clone()));
        let new = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&so)
            .and_then(|f| f.set_modified(new))
            .expect("renew the bytecode");
        assert_eq!(newer_source(&so, ws.path()), None);
    }

    #[test]
    fn a_file_that_is_not_elf_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(SO_NAME);
        std::fs::write(&p, b"not a program").expect("write");
        let err = read_elf(&p).expect_err("not ELF");
        assert!(err.to_string().contains("is not an ELF file"), "{err}");
    }
}
