//! How results are printed: a human line, or one JSON object per line with `--json`.

use serde_json::Value;

/// Where results go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON object per line instead of text.
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or `text` for people.
    pub fn emit(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }
}

/// The one line an operation's failure prints: what failed and why.
pub fn failure(what: &str, err: &mictlanx::Error) -> String {
    format!("{what} failed: {err}")
}
