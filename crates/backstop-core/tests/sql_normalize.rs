//! SQL normalisation: the normal forms of statements real ORMs and drivers send, the
//! query groups, the fallback for text sqlparser cannot parse, hostile input and the
//! normaliser's cache.

use std::collections::HashMap;

use backstop_core::sql::{NormalizedSql, Normalizer, group_hex, normalize};

/// `(db.system, statement, normal form)`.
type Case = (&'static str, &'static str, &'static str);

/// Statements as sqlx, diesel, sea-orm, Rails, Django and hand-written code send them.
const NORMAL_FORMS: &[Case] = &[
    // PostgreSQL
    (
        "postgresql",
        r#"SELECT "posts"."id", "posts"."title" FROM "posts" WHERE "posts"."published" = $1 ORDER BY "posts"."id" DESC LIMIT $2 OFFSET $3"#,
        r#"SELECT "posts"."id", "posts"."title" FROM "posts" WHERE "posts"."published" = ? ORDER BY "posts"."id" DESC LIMIT ? OFFSET ?"#,
    ),
    (
        "postgresql",
        r#"SELECT "cake"."id", "cake"."name" FROM "cake" WHERE "cake"."id" = $1 LIMIT $2"#,
        r#"SELECT "cake"."id", "cake"."name" FROM "cake" WHERE "cake"."id" = ? LIMIT ?"#,
    ),
    (
        "postgresql",
        r#"SELECT "users".* FROM "users" WHERE "users"."id" = $1 LIMIT $2 /*action='show',application='Blog',controller='users'*/"#,
        r#"SELECT "users".* FROM "users" WHERE "users"."id" = ? LIMIT ?"#,
    ),
    (
        "postgresql",
        "SELECT id, name FROM users WHERE email = 'a@b.c' AND active = true AND deleted_at IS NULL",
        "SELECT id, name FROM users WHERE email = ? AND active = true AND deleted_at IS NULL",
    ),
    (
        "postgresql",
        "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id, created_at",
        "INSERT INTO users (email, name) VALUES (?, ?) RETURNING id, created_at",
    ),
    (
        "postgresql",
        "INSERT INTO tags (name) VALUES ('a'), ('b'), ('c') ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        "INSERT INTO tags (name) VALUES (?), ... ON CONFLICT(name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    ),
    (
        "postgresql",
        "INSERT INTO users (id, email, updated_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET email = excluded.email, updated_at = excluded.updated_at WHERE users.updated_at < excluded.updated_at",
        "INSERT INTO users (id, email, updated_at) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET email = excluded.email, updated_at = excluded.updated_at WHERE users.updated_at < excluded.updated_at",
    ),
    (
        "postgresql",
        "INSERT INTO counters (key, n) VALUES ('hits', 1) ON CONFLICT (key) DO NOTHING",
        "INSERT INTO counters (key, n) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
    ),
    (
        "postgresql",
        "INSERT INTO tags (name) SELECT * FROM UNNEST($1::text[]) ON CONFLICT DO NOTHING",
        "INSERT INTO tags (name) SELECT * FROM UNNEST(?::TEXT[]) ON CONFLICT DO NOTHING",
    ),
    (
        "postgresql",
        "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '7 days') SELECT customer_id, count(*) FROM recent GROUP BY customer_id HAVING count(*) > 3 ORDER BY 2 DESC",
        "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - INTERVAL ?) SELECT customer_id, count(*) FROM recent GROUP BY customer_id HAVING count(*) > ? ORDER BY 2 DESC",
    ),
    (
        "postgresql",
        "WITH RECURSIVE tree AS (SELECT id, parent_id, 1 AS depth FROM nodes WHERE id = $1 UNION ALL SELECT n.id, n.parent_id, t.depth + 1 FROM nodes n JOIN tree t ON n.parent_id = t.id) SELECT * FROM tree",
        "WITH RECURSIVE tree AS (SELECT id, parent_id, ? AS depth FROM nodes WHERE id = ? UNION ALL SELECT n.id, n.parent_id, t.depth + ? FROM nodes n JOIN tree t ON n.parent_id = t.id) SELECT * FROM tree",
    ),
    (
        "postgresql",
        r#"SELECT id::int, data->>'name' AS name, data #> '{a,b}' FROM events WHERE data @> '{"kind": "click"}'::jsonb"#,
        "SELECT id::INT, data ->> ? AS name, data #> ? FROM events WHERE data @> ?::JSONB",
    ),
    (
        "postgresql",
        "SELECT data->'a'->>'b', data ? 'key' FROM docs WHERE data ?| array['a', 'b']",
        "SELECT data -> ? ->> ?, data ? ? FROM docs WHERE data ?| ARRAY[?, ?]",
    ),
    (
        "postgresql",
        "SELECT * FROM posts WHERE title ILIKE '%rust%' AND id = ANY($1) ORDER BY id LIMIT 10 OFFSET 20",
        "SELECT * FROM posts WHERE title ILIKE ? AND id = ANY(?) ORDER BY id LIMIT ? OFFSET ?",
    ),
    (
        "postgresql",
        r"SELECT * FROM users WHERE name NOT LIKE 'adm\_%' ESCAPE '\' AND email LIKE '%@example.com'",
        "SELECT * FROM users WHERE name NOT LIKE ? ESCAPE ? AND email LIKE ?",
    ),
    (
        "postgresql",
        "SELECT * FROM events WHERE id = ANY($1::uuid[]) AND kind <> ALL($2::text[])",
        "SELECT * FROM events WHERE id = ANY(?::UUID[]) AND kind <> ALL(?::TEXT[])",
    ),
    (
        "postgresql",
        "SELECT row_number() OVER (PARTITION BY user_id ORDER BY created_at DESC) AS rn, id FROM sessions",
        "SELECT row_number() OVER (PARTITION BY user_id ORDER BY created_at DESC) AS rn, id FROM sessions",
    ),
    (
        "postgresql",
        "SELECT day, SUM(amount) OVER (PARTITION BY account_id ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) FROM ledger",
        "SELECT day, SUM(amount) OVER (PARTITION BY account_id ORDER BY day ROWS BETWEEN ? PRECEDING AND CURRENT ROW) FROM ledger",
    ),
    (
        "postgresql",
        "UPDATE accounts SET balance = balance - 100.50, updated_at = NOW() WHERE id = 42 AND balance >= -5",
        "UPDATE accounts SET balance = balance - ?, updated_at = NOW() WHERE id = ? AND balance >= ?",
    ),
    (
        "postgresql",
        "UPDATE users SET name = $1 WHERE id = $2 RETURNING *",
        "UPDATE users SET name = ? WHERE id = ? RETURNING *",
    ),
    (
        "postgresql",
        "DELETE FROM sessions WHERE expires_at < $1::timestamptz",
        "DELETE FROM sessions WHERE expires_at < ?::TIMESTAMPTZ",
    ),
    (
        "postgresql",
        "DELETE FROM line_items USING orders WHERE line_items.order_id = orders.id AND orders.status = 'void'",
        "DELETE FROM line_items USING orders WHERE line_items.order_id = orders.id AND orders.status = ?",
    ),
    (
        "postgresql",
        "SELECT id, payload FROM jobs WHERE queue = $1 AND run_at <= now() ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        "SELECT id, payload FROM jobs WHERE queue = ? AND run_at <= now() ORDER BY run_at LIMIT ? FOR UPDATE SKIP LOCKED",
    ),
    (
        "postgresql",
        "SELECT EXISTS(SELECT 1 FROM users WHERE email = $1)",
        "SELECT EXISTS (SELECT ? FROM users WHERE email = ?)",
    ),
    (
        "postgresql",
        "SELECT CASE WHEN score > 90 THEN 'A' WHEN score > 80 THEN 'B' ELSE 'C' END FROM grades",
        "SELECT CASE WHEN score > ? THEN ? WHEN score > ? THEN ? ELSE ? END FROM grades",
    ),
    (
        "postgresql",
        "SELECT * FROM t WHERE created_at BETWEEN '2024-01-01' AND '2024-12-31' AND x IN (1) AND y NOT IN (1, 2, 3)",
        "SELECT * FROM t WHERE created_at BETWEEN ? AND ? AND x IN (...) AND y NOT IN (...)",
    ),
    (
        "postgresql",
        "SELECT * FROM t WHERE id IN ($1, $2, $3, $4, $5) AND (a, b) IN ((1, 2), (3, 4))",
        "SELECT * FROM t WHERE id IN (...) AND (a, b) IN (...)",
    ),
    (
        "postgresql",
        // A column in the list: not a literal list, so only the literals change.
        "SELECT * FROM t WHERE id IN (1, a.b, 3)",
        "SELECT * FROM t WHERE id IN (?, a.b, ?)",
    ),
    (
        "postgresql",
        "SELECT u.id FROM users u JOIN orders o ON o.user_id = u.id LEFT JOIN items i ON i.order_id = o.id WHERE o.total > 10",
        "SELECT u.id FROM users u JOIN orders o ON o.user_id = u.id LEFT JOIN items i ON i.order_id = o.id WHERE o.total > ?",
    ),
    (
        "postgresql",
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM bans WHERE reason = 'spam')",
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM bans WHERE reason = ?)",
    ),
    (
        "postgresql",
        "SELECT a.id FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.a_id = a.id AND b.kind IN ('x', 'y'))",
        "SELECT a.id FROM a WHERE NOT EXISTS (SELECT ? FROM b WHERE b.a_id = a.id AND b.kind IN (...))",
    ),
    (
        "postgresql",
        "SELECT $$dollar 'quoted'$$, $tag$x$tag$, E'esc\\n', X'DEADBEEF', B'0101', 1.5e10",
        "SELECT ?, ?, ?, ?, ?, ?",
    ),
    (
        "postgresql",
        "SELECT CAST(price AS NUMERIC(10, 2)), amount::numeric(12,4), '2024-01-01'::date, DATE '2024-01-01' FROM items",
        "SELECT CAST(price AS NUMERIC(10,2)), amount::NUMERIC(12,4), ?::DATE, DATE ? FROM items",
    ),
    (
        "postgresql",
        "SELECT id FROM t WHERE flag IS NOT NULL AND deleted IS FALSE AND x IS DISTINCT FROM 3",
        "SELECT id FROM t WHERE flag IS NOT NULL AND deleted IS FALSE AND x IS DISTINCT FROM ?",
    ),
    (
        "postgresql",
        "select count(*) from users where lower(email) = lower($1) -- login\n",
        "SELECT count(*) FROM users WHERE lower(email) = lower(?)",
    ),
    (
        "postgresql",
        "SELECT\n    id,\n    name\nFROM   users\nWHERE  id = 7;",
        "SELECT id, name FROM users WHERE id = ?",
    ),
    ("postgresql", "SELECT 1; SELECT 2;", "SELECT ?; SELECT ?"),
    (
        "postgresql",
        "/* app:web */ SELECT 1 -- trailing\n",
        "SELECT ?",
    ),
    ("postgresql", "BEGIN", "BEGIN"),
    ("postgresql", "COMMIT", "COMMIT"),
    ("postgresql", "ROLLBACK", "ROLLBACK"),
    (
        "postgresql",
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    ),
    ("postgresql", "SAVEPOINT sp_1", "SAVEPOINT sp_1"),
    (
        "postgresql",
        "ROLLBACK TO SAVEPOINT sp_1",
        "ROLLBACK TO SAVEPOINT sp_1",
    ),
    (
        "postgresql",
        "SET search_path TO public",
        "SET search_path = public",
    ),
    (
        "postgresql",
        "SELECT pg_advisory_xact_lock(12345), pg_notify('events', $1)",
        "SELECT pg_advisory_xact_lock(?), pg_notify(?, ?)",
    ),
    (
        "postgresql",
        "SELECT version, checksum FROM _sqlx_migrations ORDER BY version",
        "SELECT version, checksum FROM _sqlx_migrations ORDER BY version",
    ),
    (
        "postgres",
        r#"SELECT "Weird  Name" FROM t WHERE "CamelCase" = 'x'"#,
        r#"SELECT "Weird  Name" FROM t WHERE "CamelCase" = ?"#,
    ),
    (
        "postgresql",
        "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v (n, s)",
        "SELECT * FROM (VALUES (?, ?), ...) AS v (n, s)",
    ),
    (
        "postgresql",
        "EXPLAIN ANALYZE SELECT * FROM t WHERE id = 5",
        "EXPLAIN ANALYZE SELECT * FROM t WHERE id = ?",
    ),
    // MySQL and MariaDB
    (
        "mysql",
        "SELECT `users`.`id`, `users`.`name` FROM `users` WHERE `users`.`id` = ? LIMIT 1",
        "SELECT `users`.`id`, `users`.`name` FROM `users` WHERE `users`.`id` = ? LIMIT ?",
    ),
    (
        "mysql",
        "INSERT INTO `posts` (`title`, `body`) VALUES ('a', 'b'), ('c', 'd') ON DUPLICATE KEY UPDATE `body` = VALUES(`body`)",
        "INSERT INTO `posts` (`title`, `body`) VALUES (?, ?), ... ON DUPLICATE KEY UPDATE `body` = VALUES(`body`)",
    ),
    (
        "mysql",
        "INSERT INTO t (a, b) VALUES (1, 2) AS new ON DUPLICATE KEY UPDATE b = new.b",
        "INSERT INTO t (a, b) VALUES (?, ?) AS new ON DUPLICATE KEY UPDATE b = new.b",
    ),
    (
        "mysql",
        "SELECT * FROM t WHERE name = \"bob\" # who\nAND x = 0x1F AND y = 'it\\'s'",
        "SELECT * FROM t WHERE name = ? AND x = ? AND y = ?",
    ),
    (
        "mysql",
        "UPDATE `users` SET `last_login` = NOW() WHERE `id` IN (1, 2, 3)",
        "UPDATE `users` SET `last_login` = NOW() WHERE `id` IN (...)",
    ),
    (
        "mysql",
        "UPDATE `jobs` SET `state` = 'running' WHERE `state` = 'queued' ORDER BY `id` LIMIT 1",
        "UPDATE `jobs` SET `state` = ? WHERE `state` = ? ORDER BY `id` LIMIT ?",
    ),
    (
        "mysql",
        "SELECT * FROM `orders` WHERE `user_id` = ? FOR UPDATE",
        "SELECT * FROM `orders` WHERE `user_id` = ? FOR UPDATE",
    ),
    (
        "mysql",
        "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10, 20",
        "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT ?, ?",
    ),
    (
        "mysql",
        "SELECT JSON_EXTRACT(doc, '$.a'), doc->>'$.name' FROM docs WHERE doc->'$.kind' = 'x'",
        "SELECT JSON_EXTRACT(doc, ?), doc ->> ? FROM docs WHERE doc -> ? = ?",
    ),
    (
        "mysql",
        "SELECT DATE_FORMAT(created_at, '%Y-%m') AS month, COUNT(*) FROM t GROUP BY 1",
        "SELECT DATE_FORMAT(created_at, ?) AS month, COUNT(*) FROM t GROUP BY 1",
    ),
    (
        "mysql",
        "INSERT INTO t VALUES ROW(1, 2), ROW(3, 4)",
        "INSERT INTO t VALUES ROW(?, ?), ...",
    ),
    (
        "mysql",
        "DELETE FROM t WHERE created_at < NOW() - INTERVAL 30 DAY",
        "DELETE FROM t WHERE created_at < NOW() - INTERVAL ? DAY",
    ),
    (
        "mariadb",
        "REPLACE INTO kv (k, v) VALUES ('a', 'b')",
        "REPLACE INTO kv (k, v) VALUES (?, ?)",
    ),
    ("mysql", "START TRANSACTION", "START TRANSACTION"),
    ("mysql", "SET NAMES utf8mb4", "SET NAMES utf8mb4"),
    (
        "mysql",
        "SELECT @@version, LAST_INSERT_ID(), @rank := @rank + 1 FROM t",
        "SELECT @@version, LAST_INSERT_ID(), @rank := @rank + ? FROM t",
    ),
    // SQLite
    (
        "sqlite",
        r#"SELECT * FROM "todos" WHERE "done" = ?1 ORDER BY "id" DESC"#,
        r#"SELECT * FROM "todos" WHERE "done" = ? ORDER BY "id" DESC"#,
    ),
    (
        "sqlite",
        "INSERT INTO kv (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
        "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
    ),
    (
        "sqlite",
        "INSERT OR REPLACE INTO kv (k, v) VALUES (:key, :value)",
        "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
    ),
    (
        "sqlite",
        "INSERT INTO notes (body) VALUES (?) RETURNING id",
        "INSERT INTO notes (body) VALUES (?) RETURNING id",
    ),
    (
        "sqlite",
        "SELECT * FROM t WHERE x = @p AND y = $id AND blob = x'00ff'",
        "SELECT * FROM t WHERE x = ? AND y = ? AND blob = ?",
    ),
    (
        "sqlite",
        "SELECT json_extract(data, '$.a') FROM t WHERE strftime('%s', 'now') - ts > 3600",
        "SELECT json_extract(data, ?) FROM t WHERE strftime(?, ?) - ts > ?",
    ),
    (
        "sqlite",
        "SELECT * FROM t WHERE x GLOB 'a*' LIMIT -1 OFFSET 5",
        "SELECT * FROM t WHERE x GLOB ? LIMIT ? OFFSET ?",
    ),
    (
        "sqlite",
        "SELECT last_insert_rowid()",
        "SELECT last_insert_rowid()",
    ),
    (
        "sqlite",
        "PRAGMA foreign_keys = ON",
        "PRAGMA foreign_keys = ON",
    ),
    (
        "sqlite",
        "PRAGMA table_info('users')",
        "PRAGMA table_info(?)",
    ),
    ("sqlite", "BEGIN IMMEDIATE", "BEGIN IMMEDIATE"),
    (
        "sqlite",
        "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL DEFAULT '')",
        "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL DEFAULT ?)",
    ),
    // SQL Server
    (
        "mssql",
        "SELECT TOP 10 [Id], [Name] FROM [dbo].[Users] WHERE [Email] = @P1",
        "SELECT TOP (?) [Id], [Name] FROM [dbo].[Users] WHERE [Email] = ?",
    ),
    (
        "mssql",
        "SELECT * FROM users WHERE id = @p1 OR id = @p2; SELECT @@ROWCOUNT",
        "SELECT * FROM users WHERE id = ? OR id = ?; SELECT @@ROWCOUNT",
    ),
    (
        "mssql",
        "SELECT * FROM users ORDER BY id OFFSET 10 ROWS FETCH NEXT 20 ROWS ONLY",
        "SELECT * FROM users ORDER BY id OFFSET ? ROWS FETCH FIRST ? ROWS ONLY",
    ),
    // Unknown system: the generic dialect.
    (
        "",
        "select   *\n\tfrom x where y = 'a''b' ;",
        "SELECT * FROM x WHERE y = ?",
    ),
];

/// Text sqlparser rejects: the scanner's form (keywords keep their case there).
const FALLBACK_FORMS: &[Case] = &[
    (
        "postgresql",
        "SELEC * FRM broken WHERE x = 'a' AND y IN (1, 2, $3) -- c",
        "SELEC * FRM broken WHERE x = ? AND y IN (...)",
    ),
    (
        "postgresql",
        // Cut off by a driver's length limit.
        "SELECT * FROM t WHERE a = 'x' AND b IN (1, 2,",
        "SELECT * FROM t WHERE a = ? AND b IN (?, ?,",
    ),
    (
        "postgresql",
        r#"SELECT "auth_user"."id" FROM "auth_user" WHERE "auth_user"."username" = %s LIMIT 21"#,
        r#"SELECT "auth_user"."id" FROM "auth_user" WHERE "auth_user"."username" = ? LIMIT ?"#,
    ),
    (
        "postgresql",
        "select * from t where a = %(name)s and b = x %s and c = -4 and d = e - 5 garbage(",
        "select * from t where a = ? and b = x %s and c = ? and d = e - ? garbage(",
    ),
    (
        "mysql",
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y') garbage garbage",
        "INSERT INTO t (a, b) VALUES (?, ?), ... garbage garbage",
    ),
    (
        "mysql",
        "select \"str\", `col`, 'it\\'s' # comment\n from t where x in (1,2,3) and (;;",
        "select ?, `col`, ? from t where x in (...) and (",
    ),
    (
        "postgresql",
        "select $body$ it's $1 $body$, E'a\\'b', U&'d\\0061t', 'x''y', \"ids\"[1] from t where #oops and (",
        "select ?, ?, ?, ?, \"ids\"[?] from t where #oops and (",
    ),
    (
        "postgresql",
        "update t set a = 1.5e3, b = .5, c = 0xFF /* note */ where d = ANY($1) and ~~~",
        "update t set a = ?, b = ?, c = ? where d = ANY(?) and ~~~",
    ),
    (
        "mssql",
        "exec sp_who @p1, @@SPID, [weird name] ???",
        "exec sp_who ?, @@SPID, [weird name] ???",
    ),
    (
        "mysql",
        "set @n := 5; select @n, 'x' from t where (",
        "set @n := ?; select @n, ? from t where (",
    ),
    ("sqlite", "SELECT 'unterminated", "SELECT ?"),
    ("postgresql", "$tag$ never closed", "?"),
    ("postgresql", "/* never closed", ""),
    ("postgresql", "", ""),
    ("postgresql", "  -- only a comment\n ; ", ""),
];

fn check_table(cases: &[Case]) {
    let mut failures = Vec::new();
    for &(system, sql, expected) in cases {
        let system = Some(system).filter(|s| !s.is_empty());
        let got = normalize(sql, system);
        if got.text != expected {
            failures.push(format!(
                "{system:?}: {sql:?}\n   expected {expected:?}\n        got {:?}",
                got.text
            ));
        }
        assert_eq!(got.group, xxhash_rust::xxh3::xxh3_64(got.text.as_bytes()));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn real_world_statements_have_the_expected_normal_forms() {
    assert!(NORMAL_FORMS.len() >= 40);
    check_table(NORMAL_FORMS);
}

#[test]
fn unparseable_statements_use_the_fallback() {
    check_table(FALLBACK_FORMS);
}

#[test]
fn the_same_query_with_other_literals_is_one_group() {
    let same: &[&[(&str, &str)]] = &[
        &[
            ("postgresql", "SELECT * FROM users WHERE id = 1"),
            ("postgresql", "SELECT * FROM users WHERE id = $1"),
            (
                "postgresql",
                "select *\n  from users\n where id = 99 -- by id",
            ),
            ("postgresql", "SELECT * FROM users WHERE id = -7;"),
            ("mysql", "SELECT * FROM users WHERE id = ?"),
            ("sqlite", "SELECT * FROM users WHERE id = ?1"),
            ("sqlite", "SELECT * FROM users WHERE id = :id"),
            ("mssql", "SELECT * FROM users WHERE id = @P1"),
            (
                "postgresql",
                "/* controller='users' */ SELECT * FROM users WHERE id = '42'",
            ),
        ],
        &[
            ("postgresql", "SELECT * FROM t WHERE id IN (1)"),
            ("postgresql", "SELECT * FROM t WHERE id IN (1, 2, 3)"),
            ("postgresql", "SELECT * FROM t WHERE id IN ($1, $2)"),
            ("mysql", "SELECT * FROM t WHERE id IN (?, ?, ?, ?)"),
            ("sqlite", "SELECT * FROM t WHERE id IN ('a', 'b')"),
        ],
        &[
            (
                "postgresql",
                "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')",
            ),
            (
                "postgresql",
                "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)",
            ),
            ("mysql", "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"),
        ],
        &[
            (
                "postgresql",
                "SELECT * FROM posts ORDER BY id LIMIT 10 OFFSET 0",
            ),
            (
                "postgresql",
                "SELECT * FROM posts ORDER BY id LIMIT $1 OFFSET $2",
            ),
        ],
    ];
    for queries in same {
        let groups: Vec<NormalizedSql> = queries
            .iter()
            .map(|(system, sql)| normalize(sql, Some(system)))
            .collect();
        for (n, (system, sql)) in groups.iter().zip(queries.iter()) {
            assert_eq!(
                (n.group, &n.text),
                (groups[0].group, &groups[0].text),
                "{system}: {sql}"
            );
        }
    }

    // A batch too big for the parser gets the scanner's form, which matches here.
    let rows = vec!["(1, 'x')"; 10_000].join(", ");
    let big = normalize(&format!("INSERT INTO t (a, b) VALUES {rows}"), None);
    assert!(big.text.len() < 100, "{}", big.text);
    let small = normalize("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')", None);
    assert_eq!(big.text, small.text);
}

#[test]
fn different_queries_are_different_groups() {
    let queries = [
        "SELECT * FROM users WHERE id = 1",
        "SELECT * FROM users WHERE id <> 1",
        "SELECT * FROM accounts WHERE id = 1",
        "SELECT id FROM users WHERE id = 1",
        "SELECT * FROM users WHERE email = 1",
        "SELECT * FROM users WHERE id IN (1, 2)",
        "SELECT * FROM users WHERE id NOT IN (1, 2)",
        "SELECT * FROM users WHERE id IN (SELECT 1)",
        "SELECT * FROM users WHERE active = TRUE",
        "SELECT * FROM users WHERE active = FALSE",
        "SELECT * FROM users WHERE deleted_at IS NULL",
        "SELECT * FROM users WHERE deleted_at IS NOT NULL",
        "SELECT * FROM users ORDER BY 1",
        "SELECT * FROM users ORDER BY 2",
        "SELECT * FROM users LIMIT 1",
        "SELECT * FROM users LIMIT 1 OFFSET 1",
        "INSERT INTO t (a) VALUES (1)",
        "INSERT INTO t (a) VALUES (1), (2)",
        "INSERT INTO t (a, b) VALUES (1, 2)",
        "UPDATE users SET name = 'x' WHERE id = 1",
        "DELETE FROM users WHERE id = 1",
        r#"SELECT * FROM "Users" WHERE id = 1"#,
        "BEGIN",
        "COMMIT",
    ];
    let mut seen = HashMap::new();
    for sql in queries {
        let n = normalize(sql, Some("postgresql"));
        if let Some(other) = seen.insert(n.group, sql) {
            panic!("{sql:?} and {other:?} share the group of {:?}", n.text);
        }
    }
}

#[test]
fn groups_are_stable_hex() {
    let n = normalize("SELECT * FROM users WHERE id = $1", Some("postgresql"));
    assert_eq!(n.text, "SELECT * FROM users WHERE id = ?");
    // Pinned: a change here regroups every stored query.
    assert_eq!(group_hex(n.group), format!("{:016x}", n.group));
    assert_eq!(
        group_hex(n.group),
        group_hex(xxhash_rust::xxh3::xxh3_64(n.text.as_bytes()))
    );
    assert_eq!(group_hex(0x1f), "000000000000001f");
    assert_eq!(group_hex(u64::MAX), "ffffffffffffffff");
}

fn hostile_inputs() -> Vec<String> {
    vec![
        "(".repeat(10_000),
        ")".repeat(10_000),
        format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("SELECT * FROM t WHERE {}", "x IN (".repeat(5_000)),
        // Operator chains parse in a loop into trees as deep as they are long.
        format!("SELECT 1{}", "+1".repeat(4_000)),
        format!("SELECT 1{}", "+1".repeat(32_000)),
        format!("SELECT * FROM t WHERE {}a = 2", "a = 1 OR ".repeat(7_000)),
        format!("SELECT x{}", "::int".repeat(12_000)),
        format!("SELECT a{}", "->'b'".repeat(12_000)),
        format!("SELECT a{}", "[1]".repeat(20_000)),
        format!("SELECT a{}", "[]".repeat(4_000)),
        format!("SELECT a{}", "[]".repeat(32_000)),
        format!("SELECT {}1", "NOT ".repeat(15_000)),
        format!("SELECT {}1", "- ".repeat(30_000)),
        format!("SELECT {}", "CASE WHEN ".repeat(5_000)),
        format!("SELECT 1{}", " UNION SELECT 1".repeat(4_000)),
        format!(
            "SELECT * FROM t WHERE x IN ({})",
            vec!["1"; 30_000].join(",")
        ),
        "'".repeat(100_001),
        "\"".repeat(100_001),
        "$$".repeat(50_000),
        "/*".repeat(50_000),
        "\\".repeat(10_000),
        "E'\\".into(),
        "\"".into(),
        "`".into(),
        "[".into(),
        "$".into(),
        "?".into(),
        "#".into(),
        ";;;;".into(),
        "\0\0\0".into(),
        "SELECT é FROM ü WHERE ß = 'ñ' AND 名前 = '値' AND x = 'é\\".into(),
        "SELECT ?????? $$ $1$2 :: :a @@ @ # %s %(x)s %".into(),
        "a".repeat(200_000),
        "SELECT 1 ".repeat(10_000),
    ]
}

#[test]
fn hostile_inputs_do_not_panic_or_overflow() {
    // 2 MiB, the default for spawned threads, whatever RUST_MIN_STACK says.
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            for input in hostile_inputs() {
                for system in [
                    Some("postgresql"),
                    Some("mysql"),
                    Some("sqlite"),
                    Some("mssql"),
                    None,
                ] {
                    let n = normalize(&input, system);
                    // `1+1` prints as `? + ?`: longer, but never much longer.
                    assert!(
                        n.text.len() <= 2 * input.len() + 16,
                        "{system:?}: {input:.40}"
                    );
                }
            }
        })
        .expect("spawn")
        .join()
        .expect("no panic");

    let nested = format!(
        "SELECT {}1{} FROM t",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let n = normalize(&nested, Some("postgresql"));
    assert!(n.text.starts_with("SELECT (((") && n.text.contains("((?))"));
    assert!(n.text.ends_with("))) FROM t"));
}

#[test]
fn the_normalizer_caches_the_same_results() {
    let mut normalizer = Normalizer::default();
    assert!(normalizer.is_empty());
    for &(system, sql, _) in NORMAL_FORMS.iter().chain(FALLBACK_FORMS) {
        let system = Some(system).filter(|s| !s.is_empty());
        let first = normalizer.normalize(sql, system).clone();
        let again = normalizer.normalize(sql, system).clone();
        assert_eq!(first, normalize(sql, system));
        assert_eq!(again, first);
    }
    let distinct: std::collections::HashSet<_> = NORMAL_FORMS
        .iter()
        .chain(FALLBACK_FORMS)
        .map(|(system, sql, _)| (*system, *sql))
        .collect();
    assert_eq!(normalizer.len(), distinct.len());

    // The same text means different things to different systems.
    let sql = r#"SELECT "name" FROM t"#;
    assert_eq!(
        normalizer.normalize(sql, Some("mysql")).text,
        "SELECT ? FROM t"
    );
    assert_eq!(normalizer.normalize(sql, Some("postgresql")).text, sql);
    assert_eq!(
        normalizer.normalize(sql, Some("mysql")).text,
        "SELECT ? FROM t"
    );
    // `postgres` and `postgresql` are one dialect and share the entry.
    let before = normalizer.len();
    assert_eq!(normalizer.normalize(sql, Some("postgres")).text, sql);
    assert_eq!(normalizer.len(), before);
}

#[test]
fn the_normalizer_stays_bounded() {
    let mut normalizer = Normalizer::new();
    for i in 0..(Normalizer::DEFAULT_CAPACITY * 2 + 100) {
        let sql = format!("SELECT * FROM t{i} WHERE id = {i}");
        let n = normalizer.normalize(&sql, Some("postgresql"));
        assert_eq!(n.text, format!("SELECT * FROM t{i} WHERE id = ?"));
        assert!(normalizer.len() <= Normalizer::DEFAULT_CAPACITY);
    }

    let mut small = Normalizer::with_capacity(8);
    for i in 0..100 {
        small.normalize(&format!("SELECT {i}"), None);
        assert!(small.len() <= 8);
    }

    // Big statements are bounded by bytes as well as by count.
    let mut big = Normalizer::new();
    let filler = "x".repeat(60_000);
    for i in 0..400 {
        big.normalize(&format!("SELECT '{filler}' FROM t{i}"), None);
    }
    assert!(big.len() < 400, "{}", big.len());
}

/// Statements glued from random SQL fragments: sqlparser and the scanner meet many
/// half-valid shapes. `SQL_FUZZ_ROUNDS` runs more of them.
#[test]
fn random_fragments_do_not_panic() {
    const FRAGMENTS: &[&str] = &[
        "SELECT ",
        "INSERT INTO t ",
        "VALUES ",
        "UPDATE ",
        "SET ",
        "DELETE ",
        "FROM ",
        "WHERE ",
        " IN ",
        "(",
        ")",
        ", ",
        "'a''b'",
        "'",
        "\"",
        "\"x\"",
        "`",
        "`c`",
        "[",
        "]",
        "$1",
        "$$",
        "$t$",
        "?",
        "?1",
        ":n",
        "@p",
        "@@v",
        "%s",
        "%(x)s",
        "1",
        "-",
        "+",
        "-1",
        "1.5e3",
        "0x1F",
        "x'00'",
        "E'\\'",
        "\\",
        "--",
        "\n",
        "/*",
        "*/",
        "#",
        "::",
        ":",
        ";",
        " AND ",
        " OR ",
        " NOT ",
        "NULL",
        "TRUE",
        " CASE WHEN ",
        " THEN ",
        " END ",
        " LIMIT ",
        " OFFSET ",
        " ORDER BY ",
        " GROUP BY ",
        "1",
        " JOIN ",
        " ON ",
        " = ",
        " ->> ",
        "ARRAY[",
        " WITH ",
        " AS ",
        " UNION ",
        " RETURNING ",
        "*",
        "é",
        "名",
        " ON CONFLICT ",
        " DO UPDATE ",
        " TOP ",
        " ROW(",
        " INTERVAL ",
        " BETWEEN ",
    ];
    let rounds = std::env::var("SQL_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2_000);
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let systems = [
        Some("postgresql"),
        Some("mysql"),
        Some("sqlite"),
        Some("mssql"),
        None,
    ];
    for _ in 0..rounds {
        let len = rng.usize(1..40);
        let sql: String = (0..len)
            .map(|_| FRAGMENTS[rng.usize(..FRAGMENTS.len())])
            .collect();
        let system = systems[rng.usize(..systems.len())];
        let n = normalize(&sql, system);
        assert_eq!(n, normalize(&sql, system), "{sql:?} is deterministic");
    }
}
