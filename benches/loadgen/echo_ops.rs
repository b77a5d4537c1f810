//! The two writes an echo run costs the engine, built the way the engine builds them, for the
//! modes that write a store directly (`seed`, `commit`).

use restack::api::{Kind, RunStatus};
use restack::engine::store::{NewRun, Op};

pub const INPUT: &str = r#"{"x":1}"#;

pub fn insert(id: String, at: i64) -> Op {
    Op::Insert(NewRun {
        id,
        kind: Kind::Agent,
        name: "echo".into(),
        input: INPUT.into(),
        created_at: at,
    })
}

pub fn finish(id: String, at: i64) -> Op {
    Op::Finish {
        id,
        status: RunStatus::Completed,
        output: Some(INPUT.into()),
        error: None,
        at,
        canceled: false,
        step: None,
    }
}
