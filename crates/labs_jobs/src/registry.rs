//! The one list of job types is written once (in the worker crate) against this trait, and
//! applied both to the runtime (to run them) and to the relay (to decode them).

use crate::job::Handler;

/// Something job types are registered with.
pub trait Registry<C>: Sized {
    #[must_use]
    fn job<J: Handler<C>>(self) -> Self;

    /// Registers what `jobs` registers: a feature crate's list of its job types (e.g.
    /// `labs_billing::jobs`), so that a feature joins the list with one line.
    #[must_use]
    fn include(self, jobs: impl FnOnce(Self) -> Self) -> Self {
        jobs(self)
    }
}
