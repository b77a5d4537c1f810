//! The write an echo run costs the engine, built the way the engine builds it, for the modes
//! that write a store directly (`seed`, `commit`): one insert of the run already completed.

use restack::api::Kind;
use restack::engine::store::NewRun;

pub const INPUT: &str = r#"{"x":1}"#;

pub fn echo_run(at: i64) -> NewRun {
    NewRun {
        kind: Kind::Agent,
        name: "echo".into(),
        input: INPUT.into(),
        created_at: at,
        output: Some(INPUT.into()),
    }
}
