//! Just enough of PostgreSQL's lexical rules to split a script into
//! statements and read names: `--` and nested `/* */` comments, '' strings
//! (E'' with backslash escapes), "" identifiers and $tag$ dollar quoting.
//! A `;` inside any of them does not end a statement.

/// A token's kind; comments and white space are not tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An unquoted word (keyword or name), as written.
    Word,
    /// A "quoted" identifier.
    Quoted,
    /// A string constant of any quoting.
    Str,
    Number,
    /// Any other character: punctuation, an operator.
    Punct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    /// Byte range in the source.
    pub start: usize,
    pub end: usize,
}

/// Why a script cannot be split. Names the line where the bad part starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct SqlError {
    pub line: usize,
    pub what: String,
}

fn line_of(src: &str, at: usize) -> usize {
    src[..at].bytes().filter(|&b| b == b'\n').count() + 1
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == '$'
}

/// The tokens of `src`, in order.
pub fn tokens(src: &str) -> Result<Vec<Token>, SqlError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let unterminated =
        |start: usize, what: &str| SqlError { line: line_of(src, start), what: format!("unterminated {what}") };
    while i < b.len() {
        let c = src[i..].chars().next().unwrap_or('\0');
        let start = i;
        if c.is_whitespace() {
            i += c.len_utf8();
        } else if b[i..].starts_with(b"--") {
            i = src[i..].find('\n').map_or(b.len(), |n| i + n + 1);
        } else if b[i..].starts_with(b"/*") {
            // Block comments nest in PostgreSQL.
            let mut depth = 0;
            loop {
                // Bytes, not chars: `i` steps through multi-byte characters.
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if i >= b.len() {
                    return Err(unterminated(start, "/* comment"));
                } else {
                    i += 1;
                }
            }
        } else if c == '\'' || ((c == 'E' || c == 'e') && b.get(i + 1) == Some(&b'\'')) {
            let escapes = c != '\'';
            i += if escapes { 2 } else { 1 };
            loop {
                match b.get(i) {
                    None => return Err(unterminated(start, "string")),
                    Some(b'\\') if escapes => i += 2,
                    Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            out.push(Token { kind: Kind::Str, start, end: i });
        } else if c == '"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(unterminated(start, "quoted identifier")),
                    Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            out.push(Token { kind: Kind::Quoted, start, end: i });
        } else if c == '$' && dollar_tag(&src[i..]).is_some() {
            let tag = dollar_tag(&src[i..]).unwrap_or("$$");
            let body = i + tag.len();
            let close = src[body..].find(tag).ok_or_else(|| unterminated(start, &format!("{tag} quoted string")))?;
            i = body + close + tag.len();
            out.push(Token { kind: Kind::Str, start, end: i });
        } else if is_ident_start(c) {
            while let Some(ch) = src[i..].chars().next().filter(|&ch| is_ident_char(ch)) {
                i += ch.len_utf8();
            }
            out.push(Token { kind: Kind::Word, start, end: i });
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(Token { kind: Kind::Number, start, end: i });
        } else {
            i += c.len_utf8();
            out.push(Token { kind: Kind::Punct, start, end: i });
        }
    }
    Ok(out)
}

/// `$tag$` or `$$` at the start of `s`, if it opens a dollar-quoted string.
fn dollar_tag(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('$')?;
    let end = rest.find('$')?;
    let tag = &rest[..end];
    let mut chars = tag.chars();
    let ok = match chars.next() {
        None => true,
        Some(first) => is_ident_start(first) && chars.all(|c| is_ident_char(c) && c != '$'),
    };
    ok.then(|| &s[..end + 2])
}

/// A statement of a script: its text (comments inside kept) and first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    pub line: usize,
}

/// Splits a script at the `;`s that end statements. Comments and empty
/// statements between them yield nothing.
pub fn statements(src: &str) -> Result<Vec<Statement>, SqlError> {
    let mut out = Vec::new();
    let mut first: Option<Token> = None;
    let mut last: Option<Token> = None;
    let mut push = |first: &mut Option<Token>, last: &mut Option<Token>| {
        if let (Some(f), Some(l)) = (first.take(), last.take()) {
            out.push(Statement { text: src[f.start..l.end].to_string(), line: line_of(src, f.start) });
        }
    };
    for t in tokens(src)? {
        if t.kind == Kind::Punct && &src[t.start..t.end] == ";" {
            push(&mut first, &mut last);
        } else {
            first.get_or_insert(t);
            last = Some(t);
        }
    }
    push(&mut first, &mut last);
    Ok(out)
}

/// A token's value as a name: a quoted identifier unquoted, a word folded
/// to lower case (as PostgreSQL does).
pub fn name(src: &str, t: &Token) -> String {
    let s = &src[t.start..t.end];
    match t.kind {
        Kind::Quoted => s[1..s.len() - 1].replace("\"\"", "\""),
        _ => s.to_lowercase(),
    }
}

/// Splits `a.b` (either part may be "quoted") into its names.
pub fn qualified_name(src: &str) -> Result<Vec<String>, SqlError> {
    let toks = tokens(src)?;
    let mut parts = Vec::new();
    let mut want_name = true;
    for t in &toks {
        match (want_name, t.kind, &src[t.start..t.end]) {
            (true, Kind::Word | Kind::Quoted, _) => parts.push(name(src, t)),
            (false, Kind::Punct, ".") => {}
            _ => return Err(SqlError { line: 1, what: format!("{src:?} is not a name or schema.name") }),
        }
        want_name = !want_name;
    }
    if parts.is_empty() || want_name {
        return Err(SqlError { line: 1, what: format!("{src:?} is not a name or schema.name") });
    }
    Ok(parts)
}

/// The roles a `CREATE POLICY` statement (as pg_dump writes it) applies
/// to: the names after `TO`, up to `USING`, `WITH` or the end.
pub fn policy_roles(defn: &str) -> Vec<String> {
    let Ok(toks) = tokens(defn) else { return Vec::new() };
    let word = |t: &Token, w: &str| t.kind == Kind::Word && defn[t.start..t.end].eq_ignore_ascii_case(w);
    // The clause follows the table name after ON; the policy's and the
    // table's names may be quoted words such as "to", never bare ones.
    let Some(on) = toks.iter().position(|t| word(t, "ON")) else { return Vec::new() };
    let Some(to) = toks[on..].iter().position(|t| word(t, "TO")).map(|p| p + on) else { return Vec::new() };
    toks[to + 1..]
        .iter()
        .take_while(|t| !word(t, "USING") && !word(t, "WITH") && &defn[t.start..t.end] != ";")
        .filter(|t| matches!(t.kind, Kind::Word | Kind::Quoted))
        .map(|t| name(defn, t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<String> {
        statements(src).unwrap().into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn comments_strings_and_dollar_quotes_do_not_split() {
        let src = "-- the first check\nSELECT 1 = 1; -- trailing; comment\n\
                   /* block; /* nested; */ still */ SELECT ';' <> 'x''; y';\n\
                   SELECT E'it\\'s; fine' IS NOT NULL;\n\
                   SELECT $$ a; b $$ = $fn$ a; b $fn$ OR true;\n\
                   SELECT \"weird;name\" FROM (SELECT 1 AS \"weird;name\") s;\n\
                   -- only a comment at the end;\n";
        assert_eq!(
            texts(src),
            vec![
                "SELECT 1 = 1",
                "SELECT ';' <> 'x''; y'",
                "SELECT E'it\\'s; fine' IS NOT NULL",
                "SELECT $$ a; b $$ = $fn$ a; b $fn$ OR true",
                "SELECT \"weird;name\" FROM (SELECT 1 AS \"weird;name\") s",
            ]
        );
        assert_eq!(statements(src).unwrap()[1].line, 3);
        assert!(texts("-- nothing\n/* at all */ ;;").is_empty());
        // $1 is a parameter, a$b$ an identifier: neither opens a quote.
        assert_eq!(texts("SELECT a$b$ FROM t; SELECT 1"), vec!["SELECT a$b$ FROM t", "SELECT 1"]);
    }

    #[test]
    fn unterminated_parts_name_their_line() {
        for (src, what) in [
            ("SELECT 1;\nSELECT 'open", "string"),
            ("SELECT 1;\n/* open", "comment"),
            ("SELECT 1;\nSELECT $x$ open", "quoted string"),
            ("SELECT 1;\nSELECT \"open", "identifier"),
        ] {
            let e = statements(src).unwrap_err();
            assert_eq!(e.line, 2, "{src}");
            assert!(e.what.contains(what), "{src}: {e}");
        }
    }

    #[test]
    fn names_and_policy_roles() {
        assert_eq!(qualified_name("archive.orders").unwrap(), vec!["archive", "orders"]);
        assert_eq!(qualified_name("\"Sales Dept\".\"Order Items\"").unwrap(), vec!["Sales Dept", "Order Items"]);
        assert_eq!(qualified_name("Orders").unwrap(), vec!["orders"]);
        assert!(qualified_name("a.").is_err());
        assert!(qualified_name("a b").is_err());
        let defn = "CREATE POLICY \"to\" ON \"Sales Dept\".\"Order Items\" FOR SELECT TO writer, \"Read Only\" \
                    USING ((v <> 'TO x'::text));";
        assert_eq!(policy_roles(defn), vec!["writer", "Read Only"]);
        assert!(policy_roles("CREATE POLICY p ON t USING (true);").is_empty());
    }
}
