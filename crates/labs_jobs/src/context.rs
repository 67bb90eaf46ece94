//! What every job handler can reach of the worker's context, whatever feature it belongs to.

use labs_db::Db;

use crate::JobQueue;

/// The platform part of a worker's context: the database and the queue. A feature's handlers
/// are generic over it (`impl<C: Context> Handler<C> for MyJob`), so a feature crate never
/// names the worker's concrete context; a feature that needs more declares its own trait on
/// top of this one (as `labs_accounts::AccountsContext` does for its purge settings).
pub trait Context: Send + Sync + 'static {
    fn db(&self) -> &Db;
    fn queue(&self) -> &JobQueue;
}
