//! The completion scripts in `completions/` are what `restack completions SHELL` prints; when
//! the CLI changes, this fails until they are regenerated (the message says how).

use crate::support::Sandbox;

#[test]
fn completion_files_match_the_cli() {
    let sb = Sandbox::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, file) in [
        ("bash", "restack.bash"),
        ("zsh", "_restack"),
        ("fish", "restack.fish"),
    ] {
        let out = sb.cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "restack completions {shell} failed");
        let generated = String::from_utf8(out.stdout).unwrap();
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            generated == committed,
            "completions/{file} is out of date; regenerate it with `cargo run -- completions {shell} > completions/{file}`"
        );
        assert!(
            generated.contains("workflow") && generated.contains("--follow"),
            "{shell} script lacks commands"
        );
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    Sandbox::new()
        .cmd()
        .args(["completions", "tcsh"])
        .assert()
        .code(2);
}
