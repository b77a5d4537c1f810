//! `restack health`: exit 0 naming the URL and profile when the server answers; exit 3 with a
//! way forward when nothing listens.

use super::fixtures::{
    assert_error, closed_url, code, engine, engine_with_env, stderr, stdout, stdout_json,
};
use crate::support::Sandbox;

#[test]
fn health_names_the_url_and_profile() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb.run(&["--url", &server.url, "health"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("ok"), "{text}");
    assert!(text.contains(&server.url), "{text}");
    assert!(text.contains("profile local"), "{text}");
}

/// `restack -c FILE -p PROFILE -o json health`, FILE holding `config`: the answer, checked to
/// be healthy and to name the profile.
fn health_json(sb: &Sandbox, config: &str, profile: &str) -> serde_json::Value {
    let cfg = sb.write("health.toml", config);
    let cfg = cfg.to_str().unwrap();
    let out = sb.run(&["-c", cfg, "-p", profile, "-o", "json", "health"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let body = stdout_json(&out);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["profile"], profile);
    assert!(body["rttMs"].is_number(), "{body}");
    body
}

#[test]
fn health_in_json() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let config = format!("[profiles.dev]\nurl = \"{}\"\n", server.url);
    let body = health_json(&sb, &config, "dev");
    assert_eq!(body["url"], server.url.as_str());
}

/// The embedded engine has no URL that outlives the command: `url` is null, never prose a
/// script would take for one, and `dataDir` says which engine answered.
#[test]
fn health_in_json_on_the_embedded_engine() {
    let sb = Sandbox::new();
    let data = sb.path("engine-data");
    let config = format!("[serve]\ndata_dir = \"{}\"\n", data.display());
    let body = health_json(&sb, &config, "embedded");
    assert!(body["url"].is_null(), "{body}");
    let said = std::path::PathBuf::from(body["dataDir"].as_str().unwrap());
    assert_eq!(
        said.canonicalize().unwrap(),
        data.canonicalize().unwrap(),
        "{body}"
    );
}

#[test]
fn health_with_nothing_listening_is_exit_3_with_a_hint() {
    let sb = Sandbox::new();
    let url = closed_url();
    let out = sb.cmd().args(["--url", &url, "health"]).output().unwrap();
    let err = assert_error(&out, 3);
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    let error_line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(error_line.contains(&url), "{err}");
    let hint = err.lines().find(|l| l.starts_with("hint: ")).expect(&err);
    assert!(hint.contains("restack serve"), "{hint}");
    // The URL was given: another profile would not change it.
    assert!(hint.contains("check the URL"), "{hint}");
    assert!(!hint.contains("--profile"), "{hint}");

    // A profile's server: the hint names the profile and the way to another.
    sb.write("c.toml", &format!("[profiles.dev]\nurl = \"{url}\"\n"));
    let out = sb.run(&["-c", "c.toml", "-p", "dev", "health"]);
    let err = assert_error(&out, 3);
    let hint = err.lines().find(|l| l.starts_with("hint: ")).expect(&err);
    assert!(hint.contains("--profile"), "{hint}");
    assert!(hint.contains("`dev`"), "names the profile in use: {hint}");
}

#[test]
fn other_commands_unreachable_are_exit_3_too() {
    let sb = Sandbox::new();
    let url = closed_url();
    for args in [
        vec!["agent", "run", "echo"],
        vec!["workflow", "run", "pair", "--follow"],
        vec!["status", "some-run", "--agent", "echo"],
    ] {
        let out = sb.cmd().args(["--url", &url]).args(&args).output().unwrap();
        let err = assert_error(&out, 3);
        assert!(err.contains(&url), "{args:?}: {err}");
        assert!(err.contains("restack serve"), "{args:?}: {err}");
    }
}

/// Credentials in a URL are kept from the screen like a token: health's line, its JSON, and
/// the error and hint for a server that cannot be reached show `***` in their place.
#[test]
fn credentials_in_the_url_are_not_printed() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let with_secret = |url: &str| url.replacen("http://", "http://user:hunter2@", 1);
    for (url, args, exit) in [
        (with_secret(&server.url), vec!["health"], 0),
        (with_secret(&server.url), vec!["-o", "json", "health"], 0),
        (with_secret(&closed_url()), vec!["health"], 3),
        (
            with_secret(&closed_url()),
            vec!["-v", "agent", "run", "echo", "-f"],
            3,
        ),
    ] {
        let out = sb.run_at(&url, &args);
        assert_eq!(code(&out), exit, "{args:?}: {out:?}");
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains("hunter2"), "{args:?}: {all}");
        assert!(all.contains("http://***@127.0.0.1:"), "{args:?}: {all}");
    }
    // A URL that does not parse is shown without them too.
    let out = sb.run(&["--url", "http://user:hunter2@127.0.0.1:99999", "health"]);
    let err = assert_error(&out, 2);
    assert!(!err.contains("hunter2") && err.contains("***@"), "{err}");
}

/// With a token to send, credentials in the URL are not sent as well: two `Authorization`
/// headers are refused, and the token is what the engine asks for.
#[test]
fn a_token_wins_over_credentials_in_the_url() {
    let sb = Sandbox::new();
    let server = engine_with_env(&sb, &[("RESTACK_API_BEARER_TOKEN", "tok")]);
    let url = server.url.replacen("http://", "http://user:pw@", 1);
    let out = sb
        .cmd()
        .env("RESTACK_API_BEARER_TOKEN", "tok")
        .args(["--url", &url, "agent", "run", "echo"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
}
