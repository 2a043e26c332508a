//! The program runs inside this process (the local endpoint's bank), compiled for the host,
//! where its `msg!` logs are printed to stdout. While the network runs, stdout is pointed at
//! stderr (with `-v`) or at nothing, so that what the demo prints on stdout, such as
//! `--output json`, is only its report.

/// While alive, file descriptor 1 goes elsewhere; dropping it restores stdout.
pub struct QuietStdout {
    #[cfg(unix)]
    saved: Option<std::os::fd::OwnedFd>,
}

impl QuietStdout {
    /// Points stdout at stderr (`to_stderr`) or at `/dev/null`. When that is not possible,
    /// stdout is left as it is.
    pub fn new(to_stderr: bool) -> QuietStdout {
        #[cfg(unix)]
        {
            use std::io::Write;
            use std::os::fd::{AsFd, AsRawFd};
            let _ = std::io::stdout().flush();
            let Ok(saved) = std::io::stdout().as_fd().try_clone_to_owned() else {
                return QuietStdout { saved: None };
            };
            let target = if to_stderr {
                std::io::stderr().as_fd().try_clone_to_owned().ok()
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .ok()
                    .map(std::os::fd::OwnedFd::from)
            };
            let Some(target) = target else {
                return QuietStdout { saved: None };
            };
            // SAFETY: both descriptors are open and owned here; dup2 only replaces fd 1.
            let replaced = unsafe { libc::dup2(target.as_raw_fd(), 1) };
            if replaced < 0 {
                tracing::debug!("could not redirect stdout; the program's logs stay on it");
                return QuietStdout { saved: None };
            }
            QuietStdout { saved: Some(saved) }
        }
        #[cfg(not(unix))]
        {
            let _ = to_stderr;
            QuietStdout {}
        }
    }
}

impl Drop for QuietStdout {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = self.saved.take() {
            use std::io::Write;
            use std::os::fd::AsRawFd;
            let _ = std::io::stdout().flush();
            // SAFETY: `saved` is an open descriptor owned here; dup2 only replaces fd 1.
            unsafe { libc::dup2(saved.as_raw_fd(), 1) };
        }
    }
}
