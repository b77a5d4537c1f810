use crate::support::Sandbox;

#[test]
fn embedded_agent_run_follow_prints_the_output() {
    let sb = Sandbox::new();
    sb.cmd()
        .args([
            "-p",
            "embedded",
            "agent",
            "run",
            "echo",
            "--input",
            r#"{"a":1}"#,
            "--follow",
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains("\"a\": 1"));
}
