//! SQL normalisation: the same query with different literals gets one normal form and
//! one stable group hash, so spans group and detectors can count repeats.
//!
//! [`normalize`] parses the statement with [`sqlparser`] in the dialect named by
//! `db.system`, rewrites the syntax tree and prints it again. The normal form:
//!
//! - string, number, hex/blob and dollar-quoted literals become `?`, and so do the
//!   placeholders every driver spells differently (`$1`, `?1`, `:name`, `@p1`);
//!   `TRUE`, `FALSE` and `NULL` stay, as they are part of the query's shape, and so do
//!   column ordinals (`ORDER BY 2`, `GROUP BY 1`) and MySQL's `@user_variables`;
//! - a negative number (`-1`) is one literal, so it becomes `?` too; `LIMIT 10 OFFSET
//!   20` becomes `LIMIT ? OFFSET ?` and SQL Server's `TOP 10` becomes `TOP (?)`;
//! - an `IN` list of literals and placeholders (or tuples of them), of any length,
//!   becomes `IN (...)`; a list holding a column or an expression keeps its items;
//! - a `VALUES` list of more than one row keeps its first row and ends in `, ...`
//!   (`INSERT INTO t (a, b) VALUES (?, ?), ...`); a single row stays as it is, so a
//!   one-row insert and a batch are two groups, and every batch size is one;
//! - comments go and whitespace collapses; keywords come out as sqlparser prints them
//!   (uppercase; function names keep their case), identifiers keep their quoting and
//!   case;
//! - several statements in one string are normalised one by one and joined with `; `.
//!
//! When sqlparser cannot parse the text (or it is longer than 64 KiB), a scanner does
//! the same kinds of replacements on the tokens as written: it strips comments,
//! replaces quoted strings, numbers and placeholders (Python's `%s` too), collapses
//! `IN` lists and `VALUES` rows and whitespace, and drops a trailing `;`. Keywords keep
//! the case they were written in there, so the two forms of one query agree only when
//! it was written the way sqlparser prints it (as ORMs mostly do).
//!
//! The group is the xxh3-64 hash of the normal form, so it is stable across runs,
//! versions of Rust and platforms. [`Normalizer`] adds a bounded cache for the worker
//! thread that sees the same statements again and again.
//!
//! ```
//! use backstop_core::sql::{group_hex, normalize};
//!
//! let a = normalize(
//!     "SELECT * FROM posts WHERE user_id = 42 AND status IN ('draft', 'new') -- feed",
//!     Some("postgresql"),
//! );
//! assert_eq!(a.text, "SELECT * FROM posts WHERE user_id = ? AND status IN (...)");
//!
//! let b = normalize(
//!     "select * from posts where user_id = $1 and status in ($2)",
//!     Some("postgresql"),
//! );
//! assert_eq!(a.group, b.group);
//! assert_eq!(group_hex(a.group).len(), 16);
//! ```

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use regex::Regex;
use sqlparser::ast::{
    Expr, GroupByExpr, Ident, InTarget, OrderByExpr, Parens, Query, Select, SetExpr, Statement,
    TopQuantity, UnaryOperator, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::dialect::{
    Dialect, GenericDialect, MsSqlDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect,
};
use sqlparser::parser::Parser;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Statements longer than this (in bytes) skip the parser and use the scanner.
const MAX_PARSE_LEN: usize = 64 * 1024;

/// Statements up to this long are parsed on the calling thread; longer ones on a
/// helper thread with a stack of [`PARSE_STACK_SIZE`].
///
/// sqlparser's recursion limit bounds nesting by parentheses, and it grows the stack
/// while parsing, visiting and printing. But operator chains (`a + b + c ...`,
/// `a[1][1]...`) parse in a loop into a tree as deep as the chain is long, and dropping
/// that tree recurses once per level, inside the parser too: about 16,000 levels
/// overflow a 2 MiB thread stack in a debug build. 8 KiB of text makes at most about
/// 4,000 levels.
const MAX_INLINE_PARSE_LEN: usize = 8 * 1024;

/// Enough for the deepest tree [`MAX_PARSE_LEN`] bytes can make (32,000 levels at
/// 2 bytes a level, some 4 MiB) four times over. Reserved, not committed, memory.
const PARSE_STACK_SIZE: usize = 16 * 1024 * 1024;

/// How deep sqlparser may nest expressions and subqueries before giving up (it then
/// falls back to the scanner). Real ORM queries stay far below it.
const RECURSION_LIMIT: usize = 64;

/// Stands in for the rows dropped from a `VALUES` list until the statement is printed.
const MORE_ROWS: &str = "__backstop_more_rows__";

/// A normalised statement and its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedSql {
    /// The normal form (`SELECT * FROM posts WHERE user_id = ?`).
    pub text: String,
    /// A stable hash of `text` (xxh3-64), the query group.
    pub group: u64,
}

impl NormalizedSql {
    fn new(text: String) -> Self {
        let group = xxh3_64(text.as_bytes());
        Self { text, group }
    }
}

/// Normalises `sql` for the database system `system` (`db.system`: `postgresql`,
/// `mysql`, `sqlite`, ...).
///
/// This parses on every call; a thread that normalises many statements should keep a
/// [`Normalizer`].
pub fn normalize(sql: &str, system: Option<&str>) -> NormalizedSql {
    normalize_as(Flavor::from_system(system), sql)
}

/// The group hash as written in span data and problems: 16 lowercase hex digits.
pub fn group_hex(group: u64) -> String {
    format!("{group:016x}")
}

/// [`normalize`] with a bounded cache keyed by database system and statement text.
///
/// Meant for the one worker thread that processes spans, hence `&mut self`. The cache
/// holds at most [`Normalizer::DEFAULT_CAPACITY`] statements (or the capacity given to
/// [`Normalizer::with_capacity`]) and at most 8 MiB of SQL; when either is reached it
/// is emptied and fills again with what is current.
///
/// ```
/// use backstop_core::sql::Normalizer;
///
/// let mut normalizer = Normalizer::new();
/// let text = normalizer.normalize("SELECT 1", Some("sqlite")).text.clone();
/// assert_eq!(text, "SELECT ?");
/// assert_eq!(normalizer.len(), 1);
/// ```
#[derive(Debug)]
pub struct Normalizer {
    entries: HashMap<u64, CacheEntry>,
    capacity: usize,
    bytes: usize,
}

#[derive(Debug)]
struct CacheEntry {
    flavor: Flavor,
    sql: Box<str>,
    normalized: NormalizedSql,
}

impl Normalizer {
    /// How many statements [`Normalizer::new`] keeps.
    pub const DEFAULT_CAPACITY: usize = 2048;

    /// Bytes of SQL (input and normal form) the cache keeps at most.
    const MAX_BYTES: usize = 8 * 1024 * 1024;

    /// A normaliser with an empty cache of [`Normalizer::DEFAULT_CAPACITY`] statements.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A normaliser whose cache keeps at most `capacity` statements (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            bytes: 0,
        }
    }

    /// Normalises `sql` as [`normalize`] does, from the cache when this statement was
    /// seen before for the same kind of database. The result borrows the cache; clone
    /// it to keep it.
    pub fn normalize(&mut self, sql: &str, system: Option<&str>) -> &NormalizedSql {
        let flavor = Flavor::from_system(system);
        let key = xxh3_64_with_seed(sql.as_bytes(), flavor as u64);
        let hit = matches!(
            self.entries.get(&key),
            Some(entry) if entry.flavor == flavor && &*entry.sql == sql
        );
        if !hit {
            let normalized = normalize_as(flavor, sql);
            let size = sql.len() + normalized.text.len();
            if self.entries.len() >= self.capacity || self.bytes + size > Self::MAX_BYTES {
                self.entries.clear();
                self.bytes = 0;
            }
            self.bytes += size;
            let entry = CacheEntry {
                flavor,
                sql: sql.into(),
                normalized,
            };
            // A hash collision replaces the other statement; its bytes stay counted
            // until the next clear, which only makes that clear come a little sooner.
            self.entries.insert(key, entry);
        }
        &self.entries[&key].normalized
    }

    /// How many statements the cache holds now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Default for Normalizer {
    fn default() -> Self {
        Self::new()
    }
}

/// The SQL dialect a `db.system` value stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Generic = 0,
    Postgres = 1,
    MySql = 2,
    Sqlite = 3,
    MsSql = 4,
}

impl Flavor {
    fn from_system(system: Option<&str>) -> Self {
        let Some(system) = system else {
            return Self::Generic;
        };
        let system = system.trim();
        let is = |name: &str| system.eq_ignore_ascii_case(name);
        if is("postgresql") || is("postgres") {
            Self::Postgres
        } else if is("mysql") || is("mariadb") {
            Self::MySql
        } else if is("sqlite") {
            Self::Sqlite
        } else if is("mssql") || is("microsoft.sql_server") {
            Self::MsSql
        } else {
            Self::Generic
        }
    }

    fn dialect(self) -> &'static dyn Dialect {
        match self {
            Self::Generic => &GenericDialect,
            Self::Postgres => &PostgreSqlDialect {},
            Self::MySql => &MySqlDialect {},
            Self::Sqlite => &SQLiteDialect {},
            Self::MsSql => &MsSqlDialect {},
        }
    }
}

fn normalize_as(flavor: Flavor, sql: &str) -> NormalizedSql {
    let parsed = if sql.len() <= MAX_INLINE_PARSE_LEN {
        normalize_parsed(flavor, sql)
    } else if sql.len() <= MAX_PARSE_LEN {
        normalize_parsed_on_big_stack(flavor, sql)
    } else {
        None
    };
    NormalizedSql::new(parsed.unwrap_or_else(|| normalize_scanned(flavor, sql)))
}

/// [`normalize_parsed`] on a helper thread with a stack big enough for any tree the
/// text can make. `None` (so the scanner) when the thread cannot be started.
fn normalize_parsed_on_big_stack(flavor: Flavor, sql: &str) -> Option<String> {
    std::thread::scope(|scope| {
        let parse = std::thread::Builder::new()
            .name("backstop-sql-parse".into())
            .stack_size(PARSE_STACK_SIZE)
            .spawn_scoped(scope, || normalize_parsed(flavor, sql))
            .ok()?;
        parse.join().ok().flatten()
    })
}

/// The parser's normal form, or `None` when sqlparser rejects the text.
fn normalize_parsed(flavor: Flavor, sql: &str) -> Option<String> {
    let mut statements = Parser::new(flavor.dialect())
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .ok()?;
    if statements.is_empty() {
        // Only comments or `;`: the scanner gives the same (empty) answer.
        return None;
    }
    let mut rewriter = Rewriter { flavor };
    let mut texts = Vec::with_capacity(statements.len());
    for statement in &mut statements {
        let _ = statement.visit(&mut rewriter);
        texts.push(finish_statement(statement));
    }
    Some(texts.join("; "))
}

fn finish_statement(statement: &Statement) -> String {
    // Plain (not `{:#}`) Display prints one line with single spaces, whatever the
    // layout of the input; only quoted identifiers keep their whitespace.
    let text = statement.to_string();
    if text.contains(MORE_ROWS) {
        text.replace(&format!("ROW({MORE_ROWS})"), "...")
            .replace(&format!("({MORE_ROWS})"), "...")
    } else {
        text
    }
}

/// Rewrites a parsed statement into its normal form.
struct Rewriter {
    flavor: Flavor,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Values(values) = &mut *query.body
            && values.rows.len() > 1
        {
            values.rows.truncate(1);
            let marker = vec![Expr::Identifier(Ident::new(MORE_ROWS))];
            values.rows.push(Parens::with_empty_span(marker));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        if let Some(top) = &mut select.top
            && let Some(TopQuantity::Constant(_)) = top.quantity
        {
            top.quantity = Some(TopQuantity::Expr(placeholder()));
        }
        if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
            exprs.iter_mut().for_each(keep_ordinal);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_order_by_expr(&mut self, order_by: &mut OrderByExpr) -> ControlFlow<()> {
        keep_ordinal(&mut order_by.expr);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr: operand,
            } if is_number(operand) => *expr = placeholder(),
            Expr::Identifier(ident) if self.flavor.is_named_placeholder(ident) => {
                *expr = placeholder();
            }
            Expr::In {
                target: InTarget::List(list),
                ..
            } if list.iter().all(|item| self.flavor.is_constant(item)) => {
                *list = vec![Expr::Identifier(Ident::new("..."))];
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        match &value.value {
            Value::Boolean(_) | Value::Null => {}
            Value::Placeholder(p) if p == "?" => {}
            _ => value.value = Value::Placeholder("?".into()),
        }
        ControlFlow::Continue(())
    }
}

/// `ORDER BY 2` and `GROUP BY 1` name a column of the result: part of the query's
/// shape, not a literal. Turned into a bare word, the number prints the same and is
/// left alone by [`Rewriter::pre_visit_value`].
fn keep_ordinal(expr: &mut Expr) {
    if let Expr::Value(ValueWithSpan {
        value: Value::Number(n, _),
        ..
    }) = expr
    {
        *expr = Expr::Identifier(Ident::new(std::mem::take(n)));
    }
}

fn placeholder() -> Expr {
    Expr::value(Value::Placeholder("?".into()))
}

fn is_number(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if matches!(v.value, Value::Number(..)))
}

impl Flavor {
    /// SQL Server's (`@p1`, `@P1`) and SQLite's (`@name`) parameters parse as
    /// variables. In MySQL `@name` is a user variable, part of the query, and
    /// `@@ROWCOUNT` and the like are system variables everywhere.
    fn is_named_placeholder(self, ident: &Ident) -> bool {
        self != Self::MySql
            && ident.quote_style.is_none()
            && ident.value.starts_with('@')
            && !ident.value.starts_with("@@")
            && ident.value.len() > 1
    }

    /// Whether an `IN` list item is a literal, a placeholder or a tuple or cast of them.
    fn is_constant(self, expr: &Expr) -> bool {
        match expr {
            Expr::Value(_) | Expr::TypedString(_) => true,
            Expr::Identifier(ident) => self.is_named_placeholder(ident) || ident.value == "...",
            Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => {
                self.is_constant(expr)
            }
            Expr::Tuple(items) => items.iter().all(|item| self.is_constant(item)),
            _ => false,
        }
    }
}

/// One token of the scanner's grammar, tried in this order at each position.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<space>\s+)",
        r"|(?P<line_comment>--[^\n]*)",
        r"|(?P<block_comment>/\*(?s:.*?)(?:\*/|\z))",
        r"|(?P<hash_comment>#[^\n]*)",
        r"|(?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)",
        r"|(?P<string>(?:[eEnNbBxX]|[uU]&)?')",
        r#"|(?P<double_quoted>")"#,
        r"|(?P<backticked>`(?:[^`]|``)*`?)",
        r"|(?P<bracketed>\[[^\]]*\]?)",
        r"|(?P<cast>::)",
        r"|(?P<system_var>@@[A-Za-z_][A-Za-z0-9_.$]*)",
        r"|(?P<placeholder>\$[0-9]+|\?[0-9]*|[:@][A-Za-z_][A-Za-z0-9_]*)",
        r"|(?P<format_placeholder>%s\b|%\([A-Za-z_][A-Za-z0-9_]*\)s)",
        r"|(?P<number>0[xX][0-9A-Fa-f]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)",
        r"|(?P<word>[\p{Alphabetic}_][\p{Alphabetic}\p{Nd}_$]*)",
        r"|(?P<other>(?s:.))",
    ))
    .expect("the SQL token pattern is valid")
});

/// `IN (?, ?, ...)` after the scanner has replaced the literals.
static IN_LIST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(IN) ?\(\?(?: ?, ?\?)*\)").expect("the IN-list pattern is valid")
});

/// A `VALUES` list of rows without nested parentheses: the first row and the rest.
static VALUES_ROWS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(VALUES ?\([^()]*\))(?: ?, ?\([^()]*\))+")
        .expect("the VALUES pattern is valid")
});

/// Words after which a `-` or `+` is a sign rather than a subtraction.
const SIGN_CONTEXT_WORDS: &[&str] = &[
    "AND", "BETWEEN", "BY", "CASE", "ELSE", "IN", "IS", "LIKE", "LIMIT", "NOT", "OFFSET", "OR",
    "RETURN", "SELECT", "SET", "THEN", "VALUES", "WHEN", "WHERE",
];

/// The fallback: the same replacements on tokens, for text sqlparser cannot parse.
fn normalize_scanned(flavor: Flavor, sql: &str) -> String {
    let mut out = Scanned::default();
    let mut pos = 0;
    // `find_at` runs only the DFA; the token's kind comes from its first characters,
    // which is several times faster than asking the regex for its capture groups.
    while let Some(found) = TOKEN.find_at(sql, pos) {
        let start = found.start();
        let token = found.as_str();
        let mut end = found.end();
        match Token::classify(token) {
            Token::Space | Token::Comment => out.space(),
            Token::HashComment if flavor == Flavor::MySql => out.space(),
            Token::HashComment => {
                // `#` is an operator in PostgreSQL (`#>`, `#-`): take the one character.
                end = start + 1;
                out.push("#", Kind::Operator);
            }
            Token::Dollar => {
                // The tag must close the string: `$tag$ ... $tag$`.
                end = sql[end..]
                    .find(token)
                    .map_or(sql.len(), |i| end + i + token.len());
                out.literal();
            }
            Token::Quoted => {
                let backslashes = flavor == Flavor::MySql || token.starts_with(['e', 'E']);
                end = quoted_end(sql, end, b'\'', backslashes);
                out.literal();
            }
            Token::DoubleQuoted if flavor == Flavor::MySql => {
                end = quoted_end(sql, end, b'"', true);
                out.literal();
            }
            Token::DoubleQuoted => {
                end = quoted_end(sql, end, b'"', false);
                out.push(&sql[start..end], Kind::Operand);
            }
            Token::Bracketed if matches!(flavor, Flavor::MsSql | Flavor::Sqlite) => {
                out.push(token, Kind::Operand);
            }
            Token::Bracketed => {
                // An array subscript elsewhere: scan its inside.
                end = start + 1;
                out.push("[", Kind::Operator);
            }
            Token::Literal if flavor == Flavor::MySql && token.starts_with('@') => {
                // A MySQL user variable.
                out.push(token, Kind::Operand);
            }
            Token::Literal => out.literal(),
            // Python drivers' `%s` and `%(name)s`, unless `%` is a modulo (`a %s`).
            Token::FormatPlaceholder if out.last != Some(Kind::Operand) => out.literal(),
            Token::FormatPlaceholder => {
                end = start + 1;
                out.push("%", Kind::Operator);
            }
            Token::Verbatim => out.push(token, Kind::Operand),
            Token::Word => {
                let sign_context = SIGN_CONTEXT_WORDS
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(token));
                let kind = if sign_context {
                    Kind::Operator
                } else {
                    Kind::Operand
                };
                out.push(token, kind);
            }
            Token::Other if token == ")" => out.push(token, Kind::Operand),
            Token::Other => out.push(token, Kind::Operator),
        }
        // Every token is at least one character long, so `pos` always advances.
        pos = end.max(start + 1);
        while !sql.is_char_boundary(pos) {
            pos += 1;
        }
    }
    let text = out.text.trim_end_matches([' ', ';']);
    let text = IN_LIST.replace_all(text, "$1 (...)");
    VALUES_ROWS.replace_all(&text, "$1, ...").into_owned()
}

/// What a [`TOKEN`] match is, told by its first characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Space,
    /// `-- ...` or `/* ... */`.
    Comment,
    /// `#`: a comment in MySQL, an operator elsewhere.
    HashComment,
    /// The opening `$$` or `$tag$` of a dollar-quoted string.
    Dollar,
    /// The opening quote (and prefix) of a single-quoted string.
    Quoted,
    /// The opening `"`: a string in MySQL, an identifier elsewhere.
    DoubleQuoted,
    /// `[name]`: an identifier in SQL Server and SQLite.
    Bracketed,
    /// A number or a placeholder.
    Literal,
    /// `%s` or `%(name)s`.
    FormatPlaceholder,
    /// Kept as written: a backticked identifier, `@@system_variable`.
    Verbatim,
    Word,
    Other,
}

impl Token {
    fn classify(token: &str) -> Self {
        let bytes = token.as_bytes();
        let long = bytes.len() > 1;
        let second = bytes.get(1).copied();
        match bytes.first().copied().unwrap_or(b' ') {
            b'-' if second == Some(b'-') => Self::Comment,
            b'/' if second == Some(b'*') => Self::Comment,
            b'#' => Self::HashComment,
            b'$' if long && token.ends_with('$') => Self::Dollar,
            b'$' if long => Self::Literal,
            b'"' => Self::DoubleQuoted,
            b'`' => Self::Verbatim,
            b'[' => Self::Bracketed,
            b'@' if second == Some(b'@') && long => Self::Verbatim,
            b':' | b'@' if long && token != "::" => Self::Literal,
            b'?' | b'0'..=b'9' => Self::Literal,
            b'.' if long => Self::Literal,
            b'%' if long => Self::FormatPlaceholder,
            _ if token.ends_with('\'') => Self::Quoted,
            _ if token.starts_with(char::is_whitespace) => Self::Space,
            _ if token.starts_with(|c: char| c.is_alphabetic() || c == '_') => Self::Word,
            _ => Self::Other,
        }
    }
}

/// Where a quoted token that opens before `start` ends: after the closing `quote`
/// (a doubled quote is an escaped one), or at the end of the text.
fn quoted_end(sql: &str, start: usize, quote: u8, backslashes: bool) -> usize {
    let bytes = sql.as_bytes();
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslashes => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    // Quotes and backslashes are ASCII, so `i` lands on a character boundary unless a
    // trailing backslash skipped past the end.
    sql.len()
}

/// What the scanner has written so far.
#[derive(Default)]
struct Scanned {
    text: String,
    pending_space: bool,
    /// The last two significant tokens, to tell a sign from a subtraction.
    last: Option<Kind>,
    before_last: Option<Kind>,
    last_is_sign: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A name, a literal or a closing parenthesis: what a binary operator follows.
    Operand,
    /// Anything else.
    Operator,
}

impl Scanned {
    fn space(&mut self) {
        self.pending_space = true;
    }

    fn literal(&mut self) {
        let sign_is_unary = self.last_is_sign && self.before_last != Some(Kind::Operand);
        if sign_is_unary {
            // `-1` is one literal: drop the sign as the parser does.
            self.text.pop();
            self.text.truncate(self.text.trim_end().len());
            self.last = self.before_last;
            self.before_last = None;
            self.last_is_sign = false;
            self.pending_space = true;
        }
        self.push("?", Kind::Operand);
    }

    fn push(&mut self, token: &str, kind: Kind) {
        let tight = token.starts_with([')', ',', ';', '.'])
            || self.text.ends_with(['(', '.'])
            || self.text.is_empty();
        if self.pending_space && !tight {
            self.text.push(' ');
        }
        self.pending_space = false;
        self.text.push_str(token);
        self.before_last = self.last;
        self.last = Some(kind);
        self.last_is_sign = token == "-" || token == "+";
    }
}
