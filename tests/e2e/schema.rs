//! `schema.graphql` is the committed API contract; it must equal what the server serves.
//! Regenerate with `UPDATE_SCHEMA=1 cargo test --test e2e schema`.

#[test]
fn committed_schema_matches_the_server() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let sdl = api::schema::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(&path, &sdl).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == sdl, "schema.graphql is stale; run UPDATE_SCHEMA=1 cargo test --test e2e schema");
}
