//! The game state the decoding benchmarks work on.

/// The richest captured game state, with a full-size screenshot put back
/// (the fixture keeps only its first 80 characters).
pub fn largest_state() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gym/B53_initialize_synthetic_state.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture exists"))
            .expect("the fixture is JSON");
    let mut body = fixture["response"]["body"].clone();
    // 320×288 PNG screens from the real server are about 6 KB, 8 KB in base64.
    body["screenshot_base64"] = serde_json::Value::String("iVBORw0KGgo".repeat(750));
    serde_json::to_vec(&body).expect("a value serializes")
}
