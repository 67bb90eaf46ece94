//! The one list of job types is written once (in the worker crate) against this trait, and
//! applied both to the runtime (to run them) and to the relay (to decode them).

use crate::job::Handler;

/// Something job types are registered with.
pub trait Registry<C>: Sized {
    #[must_use]
    fn job<J: Handler<C>>(self) -> Self;
}
