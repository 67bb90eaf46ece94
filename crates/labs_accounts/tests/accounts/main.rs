//! The accounts feature over HTTP, on `labs_testapp::TestApp` (the whole application as `labs
//! serve` builds it, a per-test database, the real Redis, the real worker and, where an email
//! matters, a real SMTP server): every flow end to end (`auth`), the pages its emailed links
//! open (`pages`), the limits a stranger could turn against an owner (`limits`), and the
//! addresses signup takes (`addresses`). One test binary, one link, for every module below.

mod addresses;
mod auth;
mod limits;
mod pages;
