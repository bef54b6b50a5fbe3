//! Tokens of the policy language. Whitespace and newlines separate tokens and mean nothing
//! else; `#` starts a comment that runs to the end of the line.
//!
//! A `-` at the start of a token is always the list dash, so `-cubeta.red_file` (no space,
//! as in the original README) is a dash and a name; inside a name `-` is an ordinary
//! character (`pool-1`).

use super::error::{PolicyError, PolicyErrorKind, Position};
use super::Operator;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// `[A-Za-z0-9._][A-Za-z0-9._-]*`: keywords, names, versions and numbers.
    Ident(String),
    /// `:` or `/` (the grammar's SEP).
    Sep,
    /// A list item's `-`.
    Dash,
    /// `$` before a variable.
    Dollar,
    /// A comparison.
    Op(Operator),
    /// `%` after a value.
    Percent,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{}`", shorten(s)),
            Tok::Sep => "`:`".to_string(),
            Tok::Dash => "`-`".to_string(),
            Tok::Dollar => "`$`".to_string(),
            Tok::Op(op) => format!("`{op}`"),
            Tok::Percent => "`%`".to_string(),
        }
    }
}

/// Names in messages are cut so that a hostile 1 MiB name makes a short message.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: Position,
}

fn starts_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '_'
}

fn continues_ident(c: char) -> bool {
    starts_ident(c) || c == '-'
}

/// Splits `text` into tokens.
pub(crate) fn lex(text: &str) -> Result<Vec<Token>, PolicyError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut column) = (1u32, 1u32);
    // Advances past one character, keeping line and column.
    macro_rules! bump {
        () => {{
            let c = chars.next();
            if c == Some('\n') {
                line = line.saturating_add(1);
                column = 1;
            } else if c.is_some() {
                column = column.saturating_add(1);
            }
            c
        }};
    }
    while let Some(&c) = chars.peek() {
        let pos = Position::new(line, column);
        if c.is_whitespace() {
            bump!();
            continue;
        }
        if c == '#' {
            while chars.peek().is_some_and(|&c| c != '\n') {
                bump!();
            }
            continue;
        }
        let tok = match c {
            ':' | '/' => {
                bump!();
                Tok::Sep
            }
            '-' => {
                bump!();
                Tok::Dash
            }
            '$' => {
                bump!();
                Tok::Dollar
            }
            '%' => {
                bump!();
                Tok::Percent
            }
            '>' | '<' | '=' | '!' => {
                bump!();
                let eq = chars.peek() == Some(&'=');
                if eq {
                    bump!();
                }
                match (c, eq) {
                    ('>', false) => Tok::Op(Operator::Gt),
                    ('<', false) => Tok::Op(Operator::Lt),
                    ('>', true) => Tok::Op(Operator::Ge),
                    ('<', true) => Tok::Op(Operator::Le),
                    ('=', true) => Tok::Op(Operator::Eq),
                    ('!', true) => Tok::Op(Operator::Ne),
                    _ => return Err(PolicyError::new(pos, PolicyErrorKind::UnexpectedChar(c))),
                }
            }
            c if starts_ident(c) => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if !continues_ident(c) {
                        break;
                    }
                    s.push(c);
                    bump!();
                }
                Tok::Ident(s)
            }
            other => {
                return Err(PolicyError::new(
                    pos,
                    PolicyErrorKind::UnexpectedChar(other),
                ))
            }
        };
        out.push(Token { tok, pos });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        lex(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn a_leading_dash_is_a_list_dash_and_an_inner_one_is_part_of_the_name() {
        assert_eq!(
            toks("-cubeta.red_file: pool-1"),
            vec![
                Tok::Dash,
                Tok::Ident("cubeta.red_file".into()),
                Tok::Sep,
                Tok::Ident("pool-1".into())
            ]
        );
    }

    #[test]
    fn predicates_split_into_their_parts() {
        assert_eq!(
            toks("$ACCESS_FREQUENCY>=60.6%"),
            vec![
                Tok::Dollar,
                Tok::Ident("ACCESS_FREQUENCY".into()),
                Tok::Op(Operator::Ge),
                Tok::Ident("60.6".into()),
                Tok::Percent
            ]
        );
        let ops: Vec<Tok> = toks("> < >= <= == !=");
        assert_eq!(
            ops,
            [
                Operator::Gt,
                Operator::Lt,
                Operator::Ge,
                Operator::Le,
                Operator::Eq,
                Operator::Ne
            ]
            .map(Tok::Op)
            .to_vec()
        );
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let t = lex("a\n  ñb: c").unwrap_err();
        assert_eq!(t.position, Position::new(2, 3));
        let t = lex("a\n  b: c").unwrap();
        assert_eq!(t[1].pos, Position::new(2, 3));
        assert_eq!(t[2].pos, Position::new(2, 4));
        assert_eq!(t[3].pos, Position::new(2, 6));
    }

    #[test]
    fn comments_and_slash_separators() {
        assert_eq!(
            toks("who / x # a comment: - $\n y"),
            vec![
                Tok::Ident("who".into()),
                Tok::Sep,
                Tok::Ident("x".into()),
                Tok::Ident("y".into())
            ]
        );
    }

    #[test]
    fn lone_equals_and_bang_are_errors() {
        for (text, c) in [
            ("=", '='),
            ("a !x", '!'),
            ("a ; b", ';'),
            ("\u{0}", '\u{0}'),
        ] {
            let e = lex(text).unwrap_err();
            assert_eq!(e.kind, PolicyErrorKind::UnexpectedChar(c), "{text}");
        }
    }

    #[test]
    fn long_names_are_shortened_in_messages() {
        let long = "x".repeat(1000);
        assert!(Tok::Ident(long).describe().chars().count() < 70);
    }
}
