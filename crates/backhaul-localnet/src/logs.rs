//! Program logs as a validator prints them.
//!
//! A program compiled for the host runs inside the bank through solana-program-test's shim
//! (`processor!` → `invoke_builtin_function`, and its `sol_invoke_signed` stub for CPIs). The
//! runtime already logs every invocation of a builtin (`Program <id> invoke [n]` before,
//! `Program <id> success` / `failed: …` after), and the shim logs them once more:
//!
//! - entering a host program: the runtime's `invoke [n]`, then the shim's identical line;
//! - leaving it: the shim's `success` / `failed: …`, then the runtime's identical line;
//! - a CPI made by a host program: the stub logs `Program <callee> invoke [n]` with the *caller's*
//!   depth before the runtime's `invoke [n+1]`, and `Program <callee> success` again after the
//!   callee's own `success`.
//!
//! So one Anchor instruction that emits an event (a CPI into itself) logged three
//! `Program <id> invoke [1]` lines, which breaks clients that parse logs by depth (Anchor's
//! `EventParser`, `.simulate()`). [`normalize`] removes exactly those extra lines, tracking the
//! invocation stack, for the programs that run as host builtins; programs running as SBF bytecode
//! (SPL Token, ATA, or the Backhaul program when it is loaded as bytecode) log once already and
//! pass through unchanged.

use solana_sdk::pubkey::Pubkey;
use std::collections::HashSet;
use std::str::FromStr;

/// One runtime log line that concerns the invocation stack.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Invoke(Pubkey, usize),
    Success(Pubkey),
    Failed(Pubkey),
    Other,
}

fn parse(line: &str) -> Line {
    let Some(rest) = line.strip_prefix("Program ") else {
        return Line::Other;
    };
    let Some((id, tail)) = rest.split_once(' ') else {
        return Line::Other;
    };
    let Ok(id) = Pubkey::from_str(id) else {
        return Line::Other;
    };
    if tail == "success" {
        return Line::Success(id);
    }
    if tail.starts_with("failed: ") {
        return Line::Failed(id);
    }
    if let Some(depth) = tail
        .strip_prefix("invoke [")
        .and_then(|d| d.strip_suffix(']'))
        .and_then(|d| d.parse().ok())
    {
        return Line::Invoke(id, depth);
    }
    Line::Other
}

/// Removes the lines solana-program-test's host shim adds for the programs in `host` (see the
/// module documentation); everything else is kept as is, in order.
pub(crate) fn normalize(logs: Vec<String>, host: &HashSet<Pubkey>) -> Vec<String> {
    if host.is_empty() {
        return logs;
    }
    let parsed: Vec<Line> = logs.iter().map(|l| parse(l)).collect();
    let mut keep = vec![true; logs.len()];
    // The programs currently executing, outermost first.
    let mut stack: Vec<Pubkey> = Vec::new();
    let mut i = 0;
    while i < logs.len() {
        let next = parsed.get(i + 1);
        match &parsed[i] {
            Line::Invoke(id, depth) => {
                let caller_is_host = stack.last().is_some_and(|c| host.contains(c));
                if caller_is_host
                    && *depth == stack.len()
                    && next == Some(&Line::Invoke(*id, depth + 1))
                {
                    // The CPI stub's line, at the caller's depth, before the runtime's own.
                    keep[i] = false;
                } else {
                    stack.push(*id);
                    if host.contains(id) && *depth == stack.len() && next == Some(&parsed[i]) {
                        // The shim's repetition of the runtime's line.
                        keep[i + 1] = false;
                        i += 1;
                    }
                }
            }
            Line::Success(id) | Line::Failed(id) => {
                let text = &logs[i];
                let exits_top = stack.last() == Some(id);
                if exits_top {
                    stack.pop();
                    if host.contains(id) && logs.get(i + 1) == Some(text) {
                        // The shim's exit line, repeated by the runtime right after.
                        keep[i + 1] = false;
                        i += 1;
                    }
                    let back_in_host = stack.last().is_some_and(|c| host.contains(c));
                    if matches!(parsed[i], Line::Success(_))
                        && back_in_host
                        && logs.get(i + 1) == Some(text)
                    {
                        // The CPI stub's `success` for the callee, after the runtime's.
                        keep[i + 1] = false;
                        i += 1;
                    }
                }
            }
            Line::Other => {}
        }
        i += 1;
    }
    logs.into_iter()
        .zip(keep)
        .filter_map(|(line, keep)| keep.then_some(line))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "3sxASsPrgiDAqyZAg5nTtKUjxRFHXD7kq4W1Ta6Z6WFX";
    const TOKEN: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
    const SYSTEM: &str = "11111111111111111111111111111111";

    fn host() -> HashSet<Pubkey> {
        [Pubkey::from_str(HOST).unwrap()].into_iter().collect()
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn self_cpi_of_a_host_program() {
        // What the bank logs for an Anchor instruction emitting an event (emit_cpi!).
        let raw = lines(&[
            &format!("Program {HOST} invoke [1]"),
            &format!("Program {HOST} invoke [1]"),
            "Program log: Instruction: SetPaused",
            &format!("Program {HOST} invoke [1]"),
            &format!("Program {HOST} invoke [2]"),
            &format!("Program {HOST} invoke [2]"),
            &format!("Program {HOST} success"),
            &format!("Program {HOST} success"),
            &format!("Program {HOST} success"),
            &format!("Program {HOST} success"),
            &format!("Program {HOST} success"),
        ]);
        assert_eq!(
            normalize(raw, &host()),
            lines(&[
                &format!("Program {HOST} invoke [1]"),
                "Program log: Instruction: SetPaused",
                &format!("Program {HOST} invoke [2]"),
                &format!("Program {HOST} success"),
                &format!("Program {HOST} success"),
            ])
        );
    }

    #[test]
    fn cpi_from_a_host_program_into_sbf() {
        let raw = lines(&[
            &format!("Program {HOST} invoke [1]"),
            &format!("Program {HOST} invoke [1]"),
            &format!("Program {TOKEN} invoke [1]"),
            &format!("Program {TOKEN} invoke [2]"),
            "Program log: Instruction: Burn",
            &format!("Program {TOKEN} consumed 4753 of 199999 compute units"),
            &format!("Program {TOKEN} success"),
            &format!("Program {TOKEN} success"),
            &format!("Program {HOST} success"),
            &format!("Program {HOST} success"),
            &format!("Program {SYSTEM} invoke [1]"),
            &format!("Program {SYSTEM} success"),
        ]);
        assert_eq!(
            normalize(raw, &host()),
            lines(&[
                &format!("Program {HOST} invoke [1]"),
                &format!("Program {TOKEN} invoke [2]"),
                "Program log: Instruction: Burn",
                &format!("Program {TOKEN} consumed 4753 of 199999 compute units"),
                &format!("Program {TOKEN} success"),
                &format!("Program {HOST} success"),
                &format!("Program {SYSTEM} invoke [1]"),
                &format!("Program {SYSTEM} success"),
            ])
        );
    }

    #[test]
    fn failures_of_a_host_program_and_of_its_callee() {
        let err = "failed: custom program error: 0x1";
        let raw = lines(&[
            &format!("Program {HOST} invoke [1]"),
            &format!("Program {HOST} invoke [1]"),
            &format!("Program {TOKEN} invoke [1]"),
            &format!("Program {TOKEN} invoke [2]"),
            &format!("Program {TOKEN} consumed 100 of 200000 compute units"),
            &format!("Program {TOKEN} {err}"),
            &format!("Program {HOST} {err}"),
            &format!("Program {HOST} {err}"),
        ]);
        assert_eq!(
            normalize(raw, &host()),
            lines(&[
                &format!("Program {HOST} invoke [1]"),
                &format!("Program {TOKEN} invoke [2]"),
                &format!("Program {TOKEN} consumed 100 of 200000 compute units"),
                &format!("Program {TOKEN} {err}"),
                &format!("Program {HOST} {err}"),
            ])
        );
    }

    #[test]
    fn sbf_and_builtin_logs_pass_through() {
        // Two identical top-level system transfers, and a token instruction: nothing removed,
        // with or without host programs.
        let raw = lines(&[
            &format!("Program {SYSTEM} invoke [1]"),
            &format!("Program {SYSTEM} success"),
            &format!("Program {SYSTEM} invoke [1]"),
            &format!("Program {SYSTEM} success"),
            &format!("Program {TOKEN} invoke [1]"),
            "Program log: Instruction: Transfer",
            &format!("Program {TOKEN} consumed 4644 of 199700 compute units"),
            &format!("Program {TOKEN} success"),
        ]);
        assert_eq!(normalize(raw.clone(), &host()), raw);
        assert_eq!(normalize(raw.clone(), &HashSet::new()), raw);
    }

    #[test]
    fn program_output_looking_like_runtime_lines_is_kept() {
        let raw = lines(&[
            &format!("Program {HOST} invoke [1]"),
            &format!("Program {HOST} invoke [1]"),
            "Program log: Program 11111111111111111111111111111111 success",
            "Program log: Program 11111111111111111111111111111111 success",
            &format!("Program {HOST} success"),
            &format!("Program {HOST} success"),
        ]);
        assert_eq!(
            normalize(raw, &host()),
            lines(&[
                &format!("Program {HOST} invoke [1]"),
                "Program log: Program 11111111111111111111111111111111 success",
                "Program log: Program 11111111111111111111111111111111 success",
                &format!("Program {HOST} success"),
            ])
        );
    }
}
