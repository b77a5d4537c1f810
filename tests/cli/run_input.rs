//! `--input PATH|-|JSON` and `--set k=v`: what the user writes is what the agent receives, and
//! a bad input is refused before anything reaches the server.

use serde_json::json;

use super::fixtures::{assert_error, engine, runs, stdout_json};
use crate::support::Sandbox;

/// The echo agent's output is its input, so a followed echo run shows what was sent.
fn echoed(sb: &Sandbox, url: &str, args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    let mut cmd = sb.cmd();
    cmd.args(["--url", url, "agent", "run", "echo", "--follow"])
        .args(args);
    if let Some(s) = stdin {
        cmd.write_stdin(s);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    stdout_json(&out)
}

#[test]
fn input_from_a_file() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let file = sb.write("in.json", r#"{"text": "from a file", "n": [1, 2]}"#);
    let got = echoed(&sb, &server.url, &["--input", file.to_str().unwrap()], None);
    assert_eq!(got, json!({"text": "from a file", "n": [1, 2]}));
}

/// A file saved by an editor that starts UTF-8 with a byte-order mark reads like any other.
#[test]
fn input_from_a_file_with_a_byte_order_mark() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let file = sb.write("bom.json", "\u{feff}{\"text\": \"saved on Windows\"}\r\n");
    let got = echoed(&sb, &server.url, &["--input", file.to_str().unwrap()], None);
    assert_eq!(got, json!({"text": "saved on Windows"}));
}

#[test]
fn input_from_a_relative_file_path() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    sb.write(
        "inputs/rel.json",
        r#"{"where": "relative to the working directory"}"#,
    );
    let got = echoed(&sb, &server.url, &["--input", "inputs/rel.json"], None);
    assert_eq!(got, json!({"where": "relative to the working directory"}));
}

#[test]
fn input_from_stdin() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let got = echoed(
        &sb,
        &server.url,
        &["--input", "-"],
        Some("{\"piped\": true}\n"),
    );
    assert_eq!(got, json!({"piped": true}));
}

#[test]
fn inline_json_input() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let got = echoed(
        &sb,
        &server.url,
        &["--input", r#"{"a": {"b": null}}"#],
        None,
    );
    assert_eq!(got, json!({"a": {"b": null}}));
}

#[test]
fn set_parses_json_values_and_keeps_the_rest_as_strings() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let got = echoed(
        &sb,
        &server.url,
        &[
            "--set",
            "n=3",
            "--set",
            "flag=true",
            "--set",
            "name=hello world",
            "--set",
            r#"list=[1,"two"]"#,
            "--set",
            "empty=",
            "--set",
            "eq=a=b",
        ],
        None,
    );
    assert_eq!(
        got,
        json!({"n": 3, "flag": true, "name": "hello world", "list": [1, "two"], "empty": "", "eq": "a=b"})
    );
}

#[test]
fn set_overrides_keys_of_the_input() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let got = echoed(
        &sb,
        &server.url,
        &[
            "--input",
            r#"{"keep": 1, "change": 1}"#,
            "--set",
            "change=2",
        ],
        None,
    );
    assert_eq!(got, json!({"keep": 1, "change": 2}));
}

#[test]
fn no_input_sends_an_empty_object() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    assert_eq!(echoed(&sb, &server.url, &[], None), json!({}));
}

#[test]
fn workflow_run_takes_the_same_input_options() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb
        .cmd()
        .args(["--url", &server.url, "workflow", "run", "pair", "--follow"])
        .args(["--input", "-", "--set", "x=1"])
        .write_stdin(r#"{"y": "two"}"#)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout_json(&out), json!({"x": 1, "y": "two"}));
}

/// Each of these is a usage error (exit 2, `error:`), and the engine never hears of it.
#[test]
fn bad_input_is_exit_2_and_nothing_is_sent() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let array = sb.write("array.json", "[1, 2, 3]");
    let number = sb.write("number.json", "42");
    let broken = sb.write("broken.json", "{\"a\": ");
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (vec!["--input", array.to_str().unwrap()], None, "object"),
        (vec!["--input", number.to_str().unwrap()], None, "object"),
        (vec!["--input", broken.to_str().unwrap()], None, "JSON"),
        (vec!["--input", r#"{"a": 1"#], None, "JSON"),
        (vec!["--input", "{not json}"], None, "JSON"),
        (vec!["--input", "-"], Some("\"a string\""), "object"),
        (vec!["--input", "-"], Some("null"), "object"),
        (vec!["--input", "-"], Some("{oops"), "JSON"),
        (vec!["--input", "-"], Some(""), "JSON"),
        (vec!["--input", r#"{"n": 1e400}"#], None, "range at `n`"),
        (
            vec!["--input", r#"{"a": 1, "a": 2}"#],
            None,
            "the key `a` twice in one object",
        ),
        (vec!["--input", "missing.json"], None, "missing.json"),
        // Inline JSON that is no object is told so, not taken for a missing file.
        (
            vec!["--input", "[1, 2]"],
            None,
            "must be a JSON object, not an array",
        ),
        (vec!["--set", "no-equals-sign"], None, "KEY=VALUE"),
        (vec!["--set", "=value"], None, "key"),
        (
            vec!["--set", "n=1e400"],
            None,
            "--set n: the value holds a number out of range",
        ),
    ];
    for (args, stdin, says) in cases {
        for kind in ["agent", "workflow"] {
            let name = if kind == "agent" { "echo" } else { "pair" };
            let mut cmd = sb.cmd();
            cmd.args(["--url", &server.url, kind, "run", name])
                .args(&args);
            if let Some(s) = stdin {
                cmd.write_stdin(s);
            }
            let out = cmd.output().unwrap();
            let err = assert_error(&out, 2);
            assert!(err.contains(says), "{args:?}: expected {says:?} in:\n{err}");
            assert!(out.stdout.is_empty(), "{args:?}: stdout is not empty");
        }
    }
    assert_eq!(runs(&server), Vec::<serde_json::Value>::new());
}

#[test]
fn numbers_come_back_exactly_as_written() {
    // Past 64 bits, more digits than an f64 holds, a trailing zero: what a user sends (a wei
    // amount, a long decimal) is what the agent receives and a followed run prints, unrounded.
    let sb = Sandbox::new();
    let server = engine(&sb);
    let got = echoed(
        &sb,
        &server.url,
        &[
            "--input",
            r#"{"wei": 1000000000000000000000, "pi": 3.14159265358979323846, "price": 1.50,
                "sat": 0.00000001, "zero": -0}"#,
        ],
        None,
    );
    assert_eq!(got["wei"].to_string(), "1000000000000000000000", "{got}");
    assert_eq!(got["pi"].to_string(), "3.14159265358979323846", "{got}");
    assert_eq!(got["price"].to_string(), "1.50", "{got}");
    assert_eq!(got["sat"].to_string(), "0.00000001", "{got}");
    assert_eq!(got["zero"].to_string(), "-0", "{got}");
}

/// An input may nest 100 levels, and comes back whole; one level more is exit 2 and nothing
/// is sent (the engine refuses it too, and so do its agents' outputs: a status that wraps
/// such a value would be past what a parser reads).
#[test]
fn inputs_nest_at_most_100_levels() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let nested = |levels: usize| {
        format!(
            "{{\"a\":{}{}}}",
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    let deepest = nested(100);
    let got = echoed(&sb, &server.url, &["--input", &deepest], None);
    assert_eq!(
        got,
        serde_json::from_str::<serde_json::Value>(&deepest).unwrap()
    );
    let out = sb.run_at(
        &server.url,
        &["agent", "run", "echo", "--input", &nested(101)],
    );
    let err = super::fixtures::assert_error(&out, 2);
    assert!(err.contains("nests deeper than 100 levels"), "{err}");
    let (code, body) = server.post(
        "/api/agents/echo",
        json!({"input": serde_json::from_str::<serde_json::Value>(&nested(101)).unwrap()}),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`input` nests deeper than 100 levels"),
        "{body}"
    );
}
