//! `backhaul`: the command line for node operators, AI firms, auditors and admins.

fn main() -> std::process::ExitCode {
    backhaul_cli::cli::main()
}
