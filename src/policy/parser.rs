//! The grammar (client reference §12.1), as a recursive-descent parser over [`lex`]'s
//! tokens:
//!
//! ```text
//! policy     := HEADER RESOURCES WHO WHAT WHERE HOW WHEN <end>
//! HEADER     := ("tlaloc" | "apac") SEP "v" DIGITS
//! RESOURCES  := "available-resources" SEP ( IDENT SEP ( "-" IDENT )+ )+
//! WHO        := "who" SEP IDENT
//! WHAT       := "what" SEP ( "-" IDENT )+
//! WHERE      := "where" SEP ( "-" IDENT )+
//! HOW        := "how" SEP ( "ACTIVE" | "PASSIVE" )        (any case)
//! WHEN       := "when" SEP ( "-" IDENT SEP PREDICATE )+
//! PREDICATE  := "$" ["."] VAR OP NUMBER ["%"]
//! OP         := ">" | "<" | ">=" | "<=" | "==" | "!="
//! NUMBER     := DIGITS ["." DIGITS]
//! SEP        := ":" | "/"
//! ```
//!
//! Beyond the original: `PASSIVE`, `==`, and `#` comments. `when` labels are names (the
//! original's `ALNUM+` would refuse its own README's `cubeta.red_file`).

use super::error::{PolicyError, PolicyErrorKind, Position};
use super::lexer::{lex, shorten, Tok, Token};
use super::{AvailabilityPolicy, Header, How, Pool, Predicate, Trigger};

/// Where each part of a parsed policy was written, for validation messages.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceMap {
    /// Each pool name.
    pub pools: Vec<Position>,
    /// Each peer of each pool.
    pub pool_peers: Vec<Vec<Position>>,
    pub who: Position,
    pub what: Vec<Position>,
    pub where_peers: Vec<Position>,
    /// Each trigger's target, variable and value.
    pub when: Vec<TriggerPositions>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TriggerPositions {
    pub target: Position,
    pub variable: Position,
    pub value: Position,
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    end: Position,
}

/// Keywords that end a list of names.
const SECTIONS: [&str; 6] = ["available-resources", "who", "what", "where", "how", "when"];

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.next + ahead).map(|t| &t.tok)
    }

    fn error_here(&self, expected: &str) -> PolicyError {
        match self.peek() {
            Some(t) => PolicyError::new(
                t.pos,
                PolicyErrorKind::UnexpectedToken {
                    expected: expected.to_string(),
                    found: t.tok.describe(),
                },
            ),
            None => PolicyError::new(
                self.end,
                PolicyErrorKind::UnexpectedEnd {
                    expected: expected.to_string(),
                },
            ),
        }
    }

    fn expect(&mut self, want: &Tok, expected: &str) -> Result<Position, PolicyError> {
        match self.peek() {
            Some(t) if &t.tok == want => {
                let pos = t.pos;
                self.next += 1;
                Ok(pos)
            }
            _ => Err(self.error_here(expected)),
        }
    }

    fn ident(&mut self, expected: &str) -> Result<(String, Position), PolicyError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Ident(s),
                pos,
            }) => {
                let out = (s.clone(), *pos);
                self.next += 1;
                Ok(out)
            }
            _ => Err(self.error_here(expected)),
        }
    }

    fn keyword(&mut self, word: &str) -> Result<Position, PolicyError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Ident(s),
                pos,
            }) if s == word => {
                let pos = *pos;
                self.next += 1;
                Ok(pos)
            }
            _ => Err(self.error_here(word)),
        }
    }

    /// `KEYWORD SEP`.
    fn section(&mut self, word: &str) -> Result<(), PolicyError> {
        self.keyword(word)?;
        self.expect(&Tok::Sep, "`:`")?;
        Ok(())
    }

    /// `( "-" IDENT )+`.
    fn dashed_names(&mut self, what: &str) -> Result<Vec<(String, Position)>, PolicyError> {
        let mut out = Vec::new();
        loop {
            if out.is_empty() {
                self.expect(&Tok::Dash, &format!("`-` and {what}"))?;
            } else if self.peek().map(|t| &t.tok) == Some(&Tok::Dash) {
                self.next += 1;
            } else {
                return Ok(out);
            }
            out.push(self.ident(what)?);
        }
    }

    fn header(&mut self) -> Result<(Header, u32), PolicyError> {
        let header = match self.peek() {
            Some(Token {
                tok: Tok::Ident(s), ..
            }) if s == "tlaloc" => Header::Tlaloc,
            Some(Token {
                tok: Tok::Ident(s), ..
            }) if s == "apac" => Header::Apac,
            _ => return Err(self.error_here("`tlaloc` or `apac`")),
        };
        self.next += 1;
        self.expect(&Tok::Sep, "`:`")?;
        let (v, pos) = self.ident("a version such as v1")?;
        let version = v
            .strip_prefix('v')
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or_else(|| PolicyError::new(pos, PolicyErrorKind::BadVersion(shorten(&v))))?;
        if version != 1 {
            return Err(PolicyError::new(
                pos,
                PolicyErrorKind::UnsupportedVersion(version),
            ));
        }
        Ok((header, version))
    }

    fn resources(&mut self, map: &mut SourceMap) -> Result<Vec<Pool>, PolicyError> {
        self.section("available-resources")?;
        let mut pools = Vec::new();
        loop {
            let starts_pool =
                matches!(self.peek_at(0), Some(Tok::Ident(s)) if !SECTIONS.contains(&s.as_str()));
            if !starts_pool {
                if pools.is_empty() {
                    return Err(self.error_here("a pool name"));
                }
                return Ok(pools);
            }
            let (name, pos) = self.ident("a pool name")?;
            self.expect(&Tok::Sep, "`:`")?;
            let peers = self.dashed_names("a peer name")?;
            map.pools.push(pos);
            map.pool_peers.push(peers.iter().map(|(_, p)| *p).collect());
            pools.push(Pool {
                name,
                peers: peers.into_iter().map(|(n, _)| n).collect(),
            });
        }
    }

    fn how(&mut self) -> Result<How, PolicyError> {
        self.section("how")?;
        let (word, pos) = self.ident("ACTIVE or PASSIVE")?;
        word.parse::<How>().map_err(|_| {
            let upper = word.to_ascii_uppercase();
            let suggestion = super::validate::nearest(&upper, ["ACTIVE", "PASSIVE"]);
            PolicyError::new(
                pos,
                PolicyErrorKind::UnknownHow {
                    found: shorten(&word),
                    suggestion,
                },
            )
        })
    }

    fn number(&mut self) -> Result<(f64, Position), PolicyError> {
        let (text, pos) = self.ident("a number")?;
        let well_formed = match text.split_once('.') {
            Some((int, frac)) => all_digits(int) && all_digits(frac),
            None => all_digits(&text),
        };
        let bad = || PolicyError::new(pos, PolicyErrorKind::BadNumber(shorten(&text)));
        if !well_formed {
            return Err(bad());
        }
        let value: f64 = text.parse().map_err(|_| bad())?;
        if !value.is_finite() {
            return Err(bad());
        }
        Ok((value, pos))
    }

    fn predicate(&mut self) -> Result<(Predicate, Position, Position), PolicyError> {
        self.expect(&Tok::Dollar, "`$` and a variable")?;
        let (raw, var_pos) = self.ident("a variable such as ACCESS_FREQUENCY")?;
        // `$.VAR` is allowed by the grammar; the dot means nothing.
        let variable = raw.strip_prefix('.').unwrap_or(&raw).to_string();
        if variable.is_empty()
            || !variable
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c == '-')
        {
            return Err(PolicyError::new(
                var_pos,
                PolicyErrorKind::UnexpectedToken {
                    expected: "a variable in capitals, such as ACCESS_FREQUENCY".to_string(),
                    found: format!("`{}`", shorten(&raw)),
                },
            ));
        }
        let operator = match self.peek().map(|t| &t.tok) {
            Some(Tok::Op(op)) => {
                let op = *op;
                self.next += 1;
                op
            }
            _ => return Err(self.error_here("one of > < >= <= == !=")),
        };
        let (value, value_pos) = self.number()?;
        let percent = if self.peek().map(|t| &t.tok) == Some(&Tok::Percent) {
            self.next += 1;
            true
        } else {
            false
        };
        Ok((
            Predicate {
                variable,
                operator,
                value,
                percent,
            },
            var_pos,
            value_pos,
        ))
    }

    fn when(&mut self, map: &mut SourceMap) -> Result<Vec<Trigger>, PolicyError> {
        self.section("when")?;
        let mut out = Vec::new();
        loop {
            if out.is_empty() {
                self.expect(&Tok::Dash, "`-` and a trigger")?;
            } else if self.peek().map(|t| &t.tok) == Some(&Tok::Dash) {
                self.next += 1;
            } else {
                return Ok(out);
            }
            let (target, target_pos) = self.ident("a what item")?;
            self.expect(&Tok::Sep, "`:`")?;
            let (predicate, var_pos, value_pos) = self.predicate()?;
            map.when.push(TriggerPositions {
                target: target_pos,
                variable: var_pos,
                value: value_pos,
            });
            out.push(Trigger { target, predicate });
        }
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The position just after the last character of `text`.
fn end_of(text: &str) -> Position {
    let mut pos = Position::new(1, 1);
    for c in text.chars() {
        if c == '\n' {
            pos.line = pos.line.saturating_add(1);
            pos.column = 1;
        } else {
            pos.column = pos.column.saturating_add(1);
        }
    }
    pos
}

/// Parses `text`, returning the policy and where its parts were written.
pub(crate) fn parse_with_map(text: &str) -> Result<(AvailabilityPolicy, SourceMap), PolicyError> {
    if text.len() > super::MAX_POLICY_BYTES {
        return Err(PolicyError::new(
            Position::new(1, 1),
            PolicyErrorKind::TooLarge { bytes: text.len() },
        ));
    }
    let mut p = Parser {
        tokens: lex(text)?,
        next: 0,
        end: end_of(text),
    };
    let mut map = SourceMap::default();
    let (header, version) = p.header()?;
    let resources = p.resources(&mut map)?;
    p.section("who")?;
    let (who, who_pos) = p.ident("a pool.peer name")?;
    map.who = who_pos;
    p.section("what")?;
    let what = p.dashed_names("a bucket or bucket.ball")?;
    p.section("where")?;
    let where_peers = p.dashed_names("a pool.peer name")?;
    let how = p.how()?;
    let when = p.when(&mut map)?;
    if p.peek().is_some() {
        return Err(p.error_here("the end of the policy"));
    }
    map.what = what.iter().map(|(_, pos)| *pos).collect();
    map.where_peers = where_peers.iter().map(|(_, pos)| *pos).collect();
    Ok((
        AvailabilityPolicy {
            header,
            version,
            resources,
            who,
            what: what.into_iter().map(|(n, _)| n).collect(),
            where_peers: where_peers.into_iter().map(|(n, _)| n).collect(),
            how,
            when,
        },
        map,
    ))
}
