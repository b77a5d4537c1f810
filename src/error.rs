//! The CLI's typed failures and the one place that maps them to exit codes.
//!
//! Code deep in the client raises a [`Failure`] (wrapped in `anyhow` with context on the way
//! up); `main` calls [`report`] once, which prints `error: …` and `hint: …` and picks the exit
//! status from the first `Failure` in the chain. Anything unclassified is a bug-shaped error and
//! exits 1 with its message.

use std::fmt;

/// Exit statuses, as DESIGN.md's table lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    RunFailed = 1,
    Usage = 2,
    Unreachable = 3,
    NotFound = 4,
    Unauthorized = 5,
    Timeout = 6,
    Server = 7,
    /// Ctrl-C or SIGTERM stopped a command that ran the embedded engine (128 + SIGINT, as
    /// shells report it).
    Interrupted = 130,
}

/// A failure that knows its exit status and, often, a hint for the user.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
    /// A server error or a lost connection that may clear up: a watcher retries these, a
    /// schedule never does (it could store the run twice).
    pub transient: bool,
    /// No connection could be made at all: nothing is listening there (yet).
    pub unconnected: bool,
    /// How long the server asked to be left alone (`Retry-After` on a 429 or 503).
    pub retry_after: Option<std::time::Duration>,
    /// The HTTP status of the server's answer, when the failure is one, and its message.
    pub http_status: Option<u16>,
    pub server_said: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
            hint: None,
            transient: false,
            unconnected: false,
            retry_after: None,
            http_status: None,
            server_said: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint after any the failure already has (each is printed on a line of its own).
    pub fn and_hint(mut self, hint: impl Into<String>) -> Failure {
        let hint = hint.into();
        self.hint = Some(match self.hint.take() {
            Some(first) => format!("{first}\n{hint}"),
            None => hint,
        });
        self
    }

    pub fn transient(mut self) -> Failure {
        self.transient = true;
        self
    }

    pub fn unconnected(mut self) -> Failure {
        self.unconnected = true;
        self
    }

    /// Whether `err` holds a [`Failure`] that may clear up on its own.
    pub fn is_transient(err: &anyhow::Error) -> bool {
        err.downcast_ref::<Failure>().is_some_and(|f| f.transient)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Prints the error and returns the exit status for it.
pub fn report(err: &anyhow::Error) -> i32 {
    let failure = err.chain().find_map(|e| e.downcast_ref::<Failure>());
    // The outermost message first, then the causes that add something.
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !message.contains(&c) {
            message.push_str(": ");
            message.push_str(&c);
        }
    }
    // Messages carry what servers said: printable, so a server cannot write to the terminal.
    eprintln!("error: {}", crate::output::printable(&message));
    for hint in failure
        .and_then(|f| f.hint.as_deref())
        .into_iter()
        .flat_map(str::lines)
    {
        eprintln!("hint: {}", crate::output::printable(hint));
    }
    failure
        .map(|f| f.exit as i32)
        .unwrap_or(Exit::RunFailed as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_add_up_a_line_each() {
        let f = Failure::new(Exit::Unreachable, "x").and_hint("one");
        assert_eq!(f.hint.as_deref(), Some("one"));
        let f = f.and_hint("two");
        assert_eq!(f.hint.as_deref(), Some("one\ntwo"));
    }
}
