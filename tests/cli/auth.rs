//! The bearer token: sent when set, refused when wrong or missing (exit 5), never printed.

use serde_json::json;

use super::fixtures::{assert_error, code, engine_with_env, stderr, stdout, stdout_json};
use crate::support::Sandbox;

const TOKEN: &str = "s3cret-t0ken-that-must-not-leak";

#[test]
fn verbose_shows_bearer_stars_and_never_the_token() {
    let sb = Sandbox::new();
    let server = engine_with_env(&sb, &[("RESTACK_API_BEARER_TOKEN", TOKEN)]);
    let out = sb
        .cmd()
        .args(["--url", &server.url, "-v", "agent", "run", "echo"])
        .args(["--set", "k=v", "--follow"])
        .env("RESTACK_API_BEARER_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"k": "v"}));
    let err = stderr(&out);
    assert!(err.contains("Bearer ***"), "{err}");
    assert!(!err.contains(TOKEN) && !stdout(&out).contains(TOKEN));
}

/// A token pasted from a file with its line break still works; one with a break inside is a
/// usage error that names where it came from, not a network failure.
#[test]
fn a_token_with_a_line_break_is_trimmed_or_refused() {
    let sb = Sandbox::new();
    let server = engine_with_env(&sb, &[("RESTACK_API_BEARER_TOKEN", TOKEN)]);
    let with = |token: String| {
        sb.cmd()
            .args(["--url", &server.url, "agent", "run", "echo", "-q"])
            .env("RESTACK_API_BEARER_TOKEN", token)
            .output()
            .unwrap()
    };
    let out = with(format!("{TOKEN}\r\n"));
    assert_eq!(code(&out), 0, "{out:?}");
    let out = with(format!("{TOKEN}\nsecond-line"));
    let err = assert_error(&out, 2);
    assert!(err.contains("RESTACK_API_BEARER_TOKEN"), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
}

#[test]
fn a_token_from_the_profile_is_used_and_hidden() {
    let sb = Sandbox::new();
    let server = engine_with_env(&sb, &[("RESTACK_API_BEARER_TOKEN", TOKEN)]);
    let cfg = sb.write(
        "tok.toml",
        &format!(
            "[profiles.env]\nurl = \"{0}\"\ntoken_env = \"MY_TOKEN\"\n\n[profiles.file]\nurl = \"{0}\"\ntoken = \"{TOKEN}\"\n",
            server.url
        ),
    );
    for (profile, env) in [("env", vec![("MY_TOKEN", TOKEN)]), ("file", vec![])] {
        let out = sb
            .cmd()
            .args(["-c", cfg.to_str().unwrap(), "-p", profile, "-vv"])
            .args(["agent", "run", "echo", "-f"])
            .envs(env)
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{profile}: {out:?}");
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(all.contains("Bearer ***"), "{profile}: {all}");
        assert!(!all.contains(TOKEN), "{profile} leaked the token: {all}");
    }
}

#[test]
fn the_environment_token_wins_over_the_profiles() {
    let sb = Sandbox::new();
    let server = engine_with_env(&sb, &[("RESTACK_API_BEARER_TOKEN", TOKEN)]);
    let cfg = sb.write(
        "tok.toml",
        &format!(
            "[profiles.p]\nurl = \"{}\"\ntoken = \"stale\"\n",
            server.url
        ),
    );
    let run = |env: &[(&str, &str)]| {
        sb.cmd()
            .args(["-c", cfg.to_str().unwrap(), "-p", "p", "-q"])
            .args(["agent", "run", "echo"])
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    assert_error(&run(&[]), 5);
    let out = run(&[("RESTACK_API_BEARER_TOKEN", TOKEN)]);
    assert_eq!(code(&out), 0, "{out:?}");
}

/// A profile's token is for the profile's server: `--url` or a stray `RESTACK_URL` naming
/// another one gets no token from the profile (and the 401 says why), while the profile's own
/// URL spelled differently, and a profile that names no URL, still send it.
#[test]
fn a_profiles_token_goes_only_to_its_own_server() {
    let sb = Sandbox::new();
    let server = engine_with_env(&sb, &[("RESTACK_API_BEARER_TOKEN", TOKEN)]);
    let elsewhere = server.url.replace("127.0.0.1", "localhost");
    let cfg = sb.write(
        "tok.toml",
        &format!(
            "[profiles.own]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n\n[profiles.bare]\ntoken = \"{TOKEN}\"\n",
            server.url.to_uppercase().replace("HTTP://", "http://")
        ),
    );
    let run = |profile: &str, url: Option<&str>, env: Option<&str>| {
        let mut cmd = sb.cmd();
        cmd.args(["-c", cfg.to_str().unwrap(), "-p", profile]);
        if let Some(u) = url {
            cmd.args(["--url", u]);
        }
        if let Some(u) = env {
            cmd.env("RESTACK_URL", u);
        }
        cmd.args(["agent", "run", "echo", "-q"]).output().unwrap()
    };
    for (url, env) in [
        (Some(elsewhere.as_str()), None),
        (None, Some(elsewhere.as_str())),
    ] {
        let err = assert_error(&run("own", url, env), 5);
        assert!(
            err.contains("token is sent only to its own url")
                && err.contains("RESTACK_API_BEARER_TOKEN"),
            "{err}"
        );
        assert!(!err.contains(TOKEN), "{err}");
    }
    // A token_env that names an unset variable sends nothing, and the 401 says which one.
    let env_cfg = sb.write(
        "env.toml",
        &format!(
            "[profiles.e]\nurl = \"{}\"\ntoken_env = \"MY_UNSET_TOKEN\"\n",
            server.url
        ),
    );
    let out = sb.run(&[
        "-c",
        env_cfg.to_str().unwrap(),
        "-p",
        "e",
        "agent",
        "run",
        "echo",
    ]);
    let err = assert_error(&out, 5);
    assert!(
        err.contains("MY_UNSET_TOKEN") && err.contains("not set"),
        "{err}"
    );
    // Sent elsewhere, such a profile has no token to keep back, and the hint does not say so.
    let out = sb.run(&[
        "-c",
        env_cfg.to_str().unwrap(),
        "-p",
        "e",
        "--url",
        &elsewhere,
        "agent",
        "run",
        "echo",
    ]);
    let err = assert_error(&out, 5);
    assert!(!err.contains("sent only to its own url"), "{err}");
    let own = format!("{}/", server.url);
    for (profile, url) in [
        ("own", Some(own.as_str())),
        ("bare", Some(elsewhere.as_str())),
    ] {
        let out = run(profile, url, None);
        assert_eq!(code(&out), 0, "{profile}: {out:?}");
    }
}

#[test]
fn a_wrong_or_missing_token_is_exit_5_and_the_wrong_one_is_not_echoed() {
    let sb = Sandbox::new();
    let server = engine_with_env(&sb, &[("RESTACK_API_BEARER_TOKEN", TOKEN)]);
    let wrong = "wrong-token-also-secret";
    for env in [vec![("RESTACK_API_BEARER_TOKEN", wrong)], vec![]] {
        for args in [
            vec!["agent", "run", "echo"],
            vec!["-v", "status", "some-run", "--agent", "echo"],
        ] {
            let out = sb
                .cmd()
                .args(["--url", &server.url])
                .args(&args)
                .envs(env.clone())
                .output()
                .unwrap();
            let err = assert_error(&out, 5);
            assert!(err.contains("RESTACK_API_BEARER_TOKEN"), "a hint: {err}");
            assert!(!err.contains(wrong), "{err}");
        }
    }
    // Refused means refused: nothing was scheduled.
    let (code, body) = crate::support::send(
        reqwest::blocking::Client::new()
            .get(format!("{}/api/runs", server.url))
            .bearer_auth(TOKEN),
    );
    assert_eq!(code, 200);
    assert_eq!(body["runs"], json!([]));
}

#[test]
fn health_needs_no_token() {
    let sb = Sandbox::new();
    let server = engine_with_env(&sb, &[("RESTACK_API_BEARER_TOKEN", TOKEN)]);
    let out = sb.run(&["--url", &server.url, "health"]);
    assert_eq!(code(&out), 0, "{out:?}");
}

/// A table of "unknown" statuses with exit 0 would hide from a script that the token is bad.
#[test]
fn the_status_table_without_the_token_is_exit_5() {
    let sb = Sandbox::new();
    let server = engine_with_env(&sb, &[("RESTACK_API_BEARER_TOKEN", TOKEN)]);
    let out = sb
        .cmd()
        .args(["--url", &server.url, "-q", "agent", "run", "echo"])
        .env("RESTACK_API_BEARER_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    for format in ["text", "json"] {
        let out = sb.run(&["--url", &server.url, "-o", format, "status"]);
        let err = assert_error(&out, 5);
        assert!(err.contains("RESTACK_API_BEARER_TOKEN"), "{err}");
        assert!(out.stdout.is_empty(), "{}", stdout(&out));
    }
    let out = sb
        .cmd()
        .args(["--url", &server.url, "-o", "json", "status"])
        .env("RESTACK_API_BEARER_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    let status = stdout_json(&out)[0]["status"].clone();
    assert!(
        ["queued", "running", "completed"].contains(&status.as_str().unwrap()),
        "{status}"
    );
}
