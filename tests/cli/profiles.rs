//! Profiles from the TOML file, the built-in `local` and `embedded`, and the precedence of
//! flags over the environment over the profile.

use super::fixtures::{assert_error, closed_url, code, engine, stderr, stdout, stdout_json};
use crate::support::Sandbox;

/// A config with a profile `up` at the engine and a profile `down` where nothing listens.
fn two_profiles(sb: &Sandbox, up: &str, extra: &str) -> String {
    let text = format!(
        "{extra}\n[profiles.up]\nurl = \"{up}\"\n\n[profiles.down]\nurl = \"{}\"\n",
        closed_url()
    );
    sb.write("cli.toml", &text).display().to_string()
}

/// The profile and URL `health` reports (exit 0), or the exit code it failed with.
fn health(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Result<(String, String), i32> {
    let out = sb
        .cmd()
        .args(args)
        .args(["-o", "json", "health"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    match code(&out) {
        0 => {
            let body = stdout_json(&out);
            Ok((
                body["profile"].as_str().unwrap().to_string(),
                body["url"].as_str().unwrap().to_string(),
            ))
        }
        n => Err(n),
    }
}

#[test]
fn profile_from_the_config_file() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let cfg = two_profiles(&sb, &server.url, "");
    assert_eq!(
        health(&sb, &["-c", &cfg, "-p", "up"], &[]),
        Ok(("up".into(), server.url.clone()))
    );
    assert_eq!(health(&sb, &["-c", &cfg, "--profile", "down"], &[]), Err(3));
}

#[test]
fn default_profile_from_the_file_and_restack_config() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let cfg = two_profiles(&sb, &server.url, "default_profile = \"up\"");
    assert_eq!(
        health(&sb, &["-c", &cfg], &[]),
        Ok(("up".into(), server.url.clone()))
    );
    // RESTACK_CONFIG names the file when there is no -c.
    assert_eq!(
        health(&sb, &[], &[("RESTACK_CONFIG", &cfg)]),
        Ok(("up".into(), server.url.clone()))
    );
}

#[test]
fn the_user_config_dir_is_read_without_flags() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    sb.write(
        "config/restack/config.toml",
        &format!(
            "default_profile = \"home\"\n[profiles.home]\nurl = \"{}\"\n",
            server.url
        ),
    );
    assert_eq!(
        health(&sb, &[], &[]),
        Ok(("home".into(), server.url.clone()))
    );
}

#[test]
fn restack_profile_picks_the_profile_and_the_flag_wins_over_it() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let cfg = two_profiles(&sb, &server.url, "default_profile = \"down\"");
    let up = Ok(("up".to_string(), server.url.clone()));
    assert_eq!(health(&sb, &["-c", &cfg], &[("RESTACK_PROFILE", "up")]), up);
    assert_eq!(
        health(
            &sb,
            &["-c", &cfg, "-p", "down"],
            &[("RESTACK_PROFILE", "up")]
        ),
        Err(3)
    );
    assert_eq!(
        health(
            &sb,
            &["-c", &cfg, "-p", "up"],
            &[("RESTACK_PROFILE", "down")]
        ),
        up
    );
}

/// `RESTACK_PROFILE= restack ...` and an exported-but-empty variable in CI mean "no choice".
#[test]
fn empty_environment_variables_count_as_unset() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let cfg = two_profiles(&sb, &server.url, "default_profile = \"up\"");
    assert_eq!(
        health(
            &sb,
            &["-c", &cfg],
            &[("RESTACK_PROFILE", ""), ("RESTACK_URL", "")]
        ),
        Ok(("up".into(), server.url.clone()))
    );
}

#[test]
fn restack_url_overrides_the_profile_and_the_flag_wins_over_it() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let cfg = two_profiles(&sb, &server.url, "");
    let closed = closed_url();
    // The environment's URL beats the profile's; the profile's name stays.
    assert_eq!(
        health(
            &sb,
            &["-c", &cfg, "-p", "down"],
            &[("RESTACK_URL", &server.url)]
        ),
        Ok(("down".into(), server.url.clone()))
    );
    // The flag beats the environment.
    assert_eq!(
        health(
            &sb,
            &["-c", &cfg, "-p", "down", "--url", &server.url],
            &[("RESTACK_URL", &closed)]
        ),
        Ok(("down".into(), server.url.clone()))
    );
    assert_eq!(
        health(
            &sb,
            &["-c", &cfg, "-p", "up", "--url", &closed],
            &[("RESTACK_URL", &server.url)]
        ),
        Err(3)
    );
}

#[test]
fn the_builtin_local_profile_points_at_localhost_6233() {
    let sb = Sandbox::new();
    // Whether something listens there is not ours to know; `-v` says where it went.
    let out = sb.run(&["-v", "health"]);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("* profile local: http://localhost:6233"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn builtin_profiles_can_be_overridden_by_the_file() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let cfg = sb.write(
        "over.toml",
        &format!(
            "[profiles.local]\nurl = \"{0}\"\n[profiles.embedded]\nurl = \"{0}\"\n",
            server.url
        ),
    );
    let cfg = cfg.to_str().unwrap();
    assert_eq!(
        health(&sb, &["-c", cfg], &[]),
        Ok(("local".into(), server.url.clone()))
    );
    assert_eq!(
        health(&sb, &["-c", cfg, "-p", "embedded"], &[]),
        Ok(("embedded".into(), server.url.clone()))
    );
}

#[test]
fn the_builtin_embedded_profile_needs_no_file_and_no_server() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "-p", "embedded", "agent", "run", "echo", "--set", "x=1", "-f",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), serde_json::json!({"x": 1}));
    // Its data lives in the user's data directory: here, inside the sandbox.
    assert!(sb.user_data().join("restack.db").exists());
}

#[test]
fn an_unknown_profile_is_exit_2_listing_the_known_ones() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["-p", "nope", "health"]).output().unwrap();
    let err = assert_error(&out, 2);
    assert!(err.contains("nope"), "{err}");
    assert!(err.contains("embedded, local"), "{err}");

    let cfg = two_profiles(&sb, &closed_url(), "");
    let out = sb
        .cmd()
        .args(["-c", &cfg, "agent", "run", "echo"])
        .env("RESTACK_PROFILE", "staging")
        .output()
        .unwrap();
    let err = assert_error(&out, 2);
    assert!(err.contains("staging"), "{err}");
    assert!(err.contains("down, embedded, local, up"), "{err}");
}

#[test]
fn a_broken_config_file_is_exit_2_naming_file_line_and_column() {
    let sb = Sandbox::new();
    let cases = [
        // TOML syntax: a key with no value on line 3.
        ("syntax.toml", "[profiles.dev]\n\nurl = \n", ":3:"),
        // A typo in a key: unknown fields are errors, not silently ignored.
        (
            "typo.toml",
            "default_profile = \"local\"\n[profiles.dev]\nurll = \"http://x\"\n",
            ":3:",
        ),
        // A value of the wrong type.
        ("type.toml", "[profiles.dev]\nembedded = \"yes\"\n", ":2:"),
    ];
    for (name, text, at) in cases {
        let path = sb.write(name, text);
        let out = sb.run(&["-c", path.to_str().unwrap(), "health"]);
        let err = assert_error(&out, 2);
        let line = err.lines().next().unwrap();
        assert!(
            line.contains(&format!("{}{at}", path.display())),
            "{name}: wants `{}{at}COL` in: {err}",
            path.display()
        );
        let col = line
            .split(&format!("{}{at}", path.display()))
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap_or("");
        assert!(
            col.parse::<u32>().is_ok_and(|c| c >= 1),
            "{name}: no column in {line}"
        );
    }
}

/// A file that parses but says something impossible: the error says what, not only where.
#[test]
fn an_invalid_value_in_the_config_says_why() {
    let sb = Sandbox::new();
    for (text, why) in [
        (
            "[profiles.a]\nurl = \"ftp://x\"\n",
            "the scheme must be http or https",
        ),
        // Both spellings without a scheme, which parse differently, get the same advice.
        (
            "[profiles.a]\nurl = \"localhost:6233\"\n",
            "it needs its scheme, as in http://localhost:6233",
        ),
        (
            "[profiles.a]\nurl = \"127.0.0.1:6233\"\n",
            "it needs its scheme, as in http://127.0.0.1:6233",
        ),
        // A parser skips the extra slashes; the URL is refused, its credentials hidden.
        (
            "[profiles.a]\nurl = \"http:///u:s3cret@127.0.0.1:6233\"\n",
            "\"http://***@127.0.0.1:6233\": write the server right after `://`",
        ),
        // Credentials stay hidden even where no scheme says where they end.
        (
            "[profiles.a]\nurl = \"user:pw@127.0.0.1:6233\"\n",
            "\"***@127.0.0.1:6233\": it needs its scheme, http:// or https://",
        ),
        (
            "[agents.x]\ncommand = [\"true\"]\ntimeout = \"5 parsecs\"\n",
            "invalid duration",
        ),
        (
            "[serve]\nworkflows_in_memory = 0\n",
            "workflows_in_memory must be at least 1",
        ),
        // Its wake-up time would be past the year 9999, which no timestamp can show.
        (
            "[workflows.w]\nsteps = [{ sleep = \"8000years\" }]\n",
            "longer than 100 years",
        ),
    ] {
        let path = sb.write("why.toml", text);
        let out = sb.run(&["-c", path.to_str().unwrap(), "health"]);
        let err = assert_error(&out, 2);
        assert!(err.contains(why), "{text}: {err}");
    }
    // A hundred years itself passes: the file is taken, and health goes on to the server.
    let path = sb.write("ok.toml", "[workflows.w]\nsteps = [{ sleep = \"100y\" }]\n");
    let out = sb.run(&[
        "-c",
        path.to_str().unwrap(),
        "--url",
        &closed_url(),
        "health",
    ]);
    assert_error(&out, 3);
}

#[test]
fn an_empty_restack_config_counts_as_unset() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb
        .cmd()
        .env("RESTACK_CONFIG", "")
        .args(["--url", &server.url, "health"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
}

#[test]
fn a_broken_config_from_restack_config_is_an_error_too() {
    let sb = Sandbox::new();
    let path = sb.write("env.toml", "default_profile = [\n");
    let out = sb
        .cmd()
        .env("RESTACK_CONFIG", &path)
        .arg("health")
        .output()
        .unwrap();
    let err = assert_error(&out, 2);
    assert!(err.contains(&path.display().to_string()), "{err}");
}

#[test]
fn a_missing_explicit_config_file_is_exit_2() {
    let sb = Sandbox::new();
    let out = sb.run(&["-c", "does-not-exist.toml", "health"]);
    let err = assert_error(&out, 2);
    assert!(err.contains("does-not-exist.toml"), "{err}");
    assert!(stdout(&out).is_empty());
}
