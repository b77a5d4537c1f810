//! The write an echo run costs the engine, built the way the engine builds it, for the modes
//! that write a store directly (`seed`, `commit`): one insert of the run already completed.

use restack::api::Kind;
use restack::engine::store::{NewRun, Op};

pub const INPUT: &str = r#"{"x":1}"#;

pub fn echo_run(id: String, at: i64) -> Op {
    Op::Insert(NewRun {
        id,
        kind: Kind::Agent,
        name: "echo".into(),
        input: INPUT.into(),
        created_at: at,
        output: Some(INPUT.into()),
    })
}
