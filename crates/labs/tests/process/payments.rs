//! The billing feature's hooks role as the real `labs` binary in production: it runs alone with
//! only its webhook secrets, and refuses the development secret however it is spelt. (Its
//! in-process tests are in its crate: `crates/labs_billing/tests/billing.rs`.)

use std::time::Duration;

#[tokio::test]
async fn the_hooks_role_runs_alone_in_production_with_only_its_webhook_secrets() {
    let database = labs_testkit::TempDatabase::new("hooks");
    let (status, _, stderr) =
        crate::common::run_labs(&["migrate"], &[("DATABASE_URL", &database.url)]);
    assert!(status.success(), "{stderr}");
    // No JWT, TOTP, code-hash or Stripe API key: the receiver needs none of them.
    let production = [
        ("LABS_ENV", "production"),
        ("LABS_ROLES", "hooks"),
        ("DATABASE_URL", database.url.as_str()),
        ("REDIS_URL", "redis://localhost:6379"),
    ];
    let (status, _, stderr) = crate::common::run_labs(&["serve"], &production);
    assert!(!status.success());
    assert!(
        stderr.contains("LABS_STRIPE_WEBHOOK_SECRETS must be set"),
        "{stderr}"
    );

    let mut env = production.to_vec();
    env.push((
        "LABS_STRIPE_WEBHOOK_SECRETS",
        "whsec_production_one,whsec_production_two",
    ));
    let mut server = crate::common::Labs::serve(&env);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    assert_eq!(
        http.get(server.url("/api/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for not_here in ["/api/openapi.json", "/api/auth/me", "/api/ext/echo"] {
        let answer = http.get(server.url(not_here)).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{not_here} is the api role's");
    }
    let unsigned = http
        .post(server.url("/hooks/stripe"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 400);
    assert_eq!(
        unsigned.headers()["content-type"],
        "application/problem+json"
    );
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).success());
}

#[test]
fn production_refuses_the_development_webhook_secret_spelt_differently() {
    for spelt in [
        "whsec_production_one,whsec_development_only ",
        "\nwhsec_development_only\n",
        "WHSEC_DEVELOPMENT_ONLY",
    ] {
        let stderr = crate::common::refused(&[
            ("LABS_ENV", "production".to_owned()),
            ("LABS_ROLES", "hooks".to_owned()),
            (
                "DATABASE_URL",
                "postgres://app:secret@db.internal/app".to_owned(),
            ),
            ("REDIS_URL", "redis://cache.internal:6379".to_owned()),
            ("LABS_STRIPE_WEBHOOK_SECRETS", spelt.to_owned()),
        ]);
        assert!(
            stderr.contains("LABS_STRIPE_WEBHOOK_SECRETS") && stderr.contains("development"),
            "{spelt:?}: {stderr}"
        );
    }
}
