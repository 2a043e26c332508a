//! What both throughput benches use: a test deployment, a grant check that lets every client
//! in, and the process's CPU time.

use backhaul_node::session::{BoxFuture, GrantCheck};
use backhaul_protocol::{Deployment, SignedGrant};

pub const D: Deployment = Deployment {
    program_id: [1; 32],
    config: [2; 32],
};

/// Every grant passes: the benches measure the session, not the chain's credit check.
pub struct Any;
impl GrantCheck for Any {
    fn check<'a>(&'a self, _: &'a SignedGrant, _: u64) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// CPU time of this process so far (user + system), seconds.
pub fn cpu() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) };
    if r != 0 {
        return 0.0;
    }
    // SAFETY: initialized by the successful call above.
    let u = unsafe { u.assume_init() };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}
