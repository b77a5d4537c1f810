//! One integration-test binary (one link) for the whole suite: a real engine on 127.0.0.1:0
//! with a real SQLite file, and the real `restack` binary, in a fresh sandbox per test.

mod cli;
mod engine;
mod support;
