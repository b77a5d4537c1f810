//! The README's example: `examples/restack.toml` with its two Python agents and the `digest`
//! workflow that chains them around a sleep step, run by a real engine.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::Sandbox;

#[test]
fn the_example_digest_workflow_summarises_then_counts_words() {
    let sb = Sandbox::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let article: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("examples/article.json")).unwrap())
            .unwrap();
    // --data-dir keeps the example's own data_dir (inside the checkout) untouched.
    let server = sb.serve(
        Some(&root.join("examples/restack.toml")),
        &sb.path("engine"),
        &[],
    );
    let id = server.schedule("workflows", "digest", article.clone());
    let run = server.wait_done("workflows", "digest", &id, Duration::from_secs(60));
    assert_eq!(run["status"], "completed", "{run}");
    let out = &run["output"];
    let summary = out["summary"].as_str().expect("the summariser's summary");
    assert!(!summary.is_empty() && summary.len() < article["text"].as_str().unwrap().len());
    assert!(out["words"].as_u64().unwrap() > 0, "{out}");
    let steps: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["completed"; 3]);
}
