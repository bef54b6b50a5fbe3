//! The canonical text of a policy: one item per line, four spaces per level, `: ` after
//! keys and `- ` before items, as in the original README. Parsing it gives back the same
//! policy.

use std::fmt;

use super::{AvailabilityPolicy, Header, Predicate};

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Header::Tlaloc => "tlaloc",
            Header::Apac => "apac",
        })
    }
}

impl fmt::Display for Predicate {
    /// `$VAR OP VALUE[%]`; the value in Rust's shortest form that reads back the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${} {} {}", self.variable, self.operator, self.value)?;
        if self.percent {
            f.write_str("%")?;
        }
        Ok(())
    }
}

impl fmt::Display for AvailabilityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: v{}", self.header, self.version)?;
        writeln!(f, "available-resources:")?;
        for pool in &self.resources {
            writeln!(f, "    {}:", pool.name)?;
            for peer in &pool.peers {
                writeln!(f, "        - {peer}")?;
            }
        }
        writeln!(f, "who: {}", self.who)?;
        writeln!(f, "what:")?;
        for item in &self.what {
            writeln!(f, "    - {item}")?;
        }
        writeln!(f, "where:")?;
        for peer in &self.where_peers {
            writeln!(f, "    - {peer}")?;
        }
        writeln!(f, "how: {}", self.how)?;
        writeln!(f, "when:")?;
        for trigger in &self.when {
            writeln!(f, "    - {}: {}", trigger.target, trigger.predicate)?;
        }
        Ok(())
    }
}
