//! Where the emailed links lead: the two pages' paths (after the app URL) and the default app
//! URL, the service's own pages (`crate::pages`). A module of its own, depending on nothing, so
//! that the settings, the protocol that writes the links and the pages that serve them all
//! name one list without naming each other.

/// The page of the verification link: `<app URL>/verify-email?token=…`.
pub const VERIFY_EMAIL: &str = "verify-email";
/// The page of the reset link (also sent to an address that signs up again):
/// `<app URL>/reset-password?token=…`.
pub const RESET_PASSWORD: &str = "reset-password";

/// The port of `LABS_BIND`'s default, for the default app URL of a state built outside `serve`
/// (which names the port it bound).
pub(crate) const DEFAULT_PORT: u16 = 8080;

/// The default `LABS_APP_URL`: the service's own pages, as a browser on this machine reaches
/// the process that listens on `port`, under the root path (`http://localhost:8080/api`).
/// `localhost` rather than the bound address: `0.0.0.0` is no address to open, and a
/// developer's browser and mail client are on this machine. Behind a proxy on another port, or
/// anywhere else, set `LABS_APP_URL`.
pub fn local_app_url(port: u16, root_path: &str) -> String {
    format!("http://localhost:{port}{root_path}")
}

#[cfg(test)]
mod tests {
    use super::local_app_url;

    #[test]
    fn the_default_app_url_is_the_pages_under_the_root_path() {
        assert_eq!(local_app_url(8080, "/api"), "http://localhost:8080/api");
        assert_eq!(local_app_url(3000, ""), "http://localhost:3000");
    }
}
