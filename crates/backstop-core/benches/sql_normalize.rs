//! What normalising a statement costs the worker: uncached (a parse with sqlparser, or
//! the fallback scanner) and cached (the worker's `Normalizer` has seen it).
//!
//! `cargo bench -p backstop-core --bench sql_normalize`

use std::hint::black_box;

use backstop_core::sql::{Normalizer, normalize};
use criterion::{Criterion, criterion_group, criterion_main};

fn cases() -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "typical_select",
            "postgresql",
            r#"SELECT "posts"."id", "posts"."title", "posts"."body" FROM "posts" INNER JOIN "users" ON "users"."id" = "posts"."user_id" WHERE "posts"."published" = $1 AND "users"."email" = 'a@b.c' ORDER BY "posts"."id" DESC LIMIT 20 OFFSET 40"#.to_owned(),
        ),
        (
            "short_select",
            "mysql",
            "SELECT * FROM `users` WHERE `id` = ? LIMIT 1".to_owned(),
        ),
        (
            "insert_10_rows",
            "postgresql",
            format!(
                "INSERT INTO t (a, b, c) VALUES {}",
                ["(1, 'x', 2.5)"; 10].join(", ")
            ),
        ),
        (
            "fallback",
            "postgresql",
            r#"SELECT "posts"."id", "posts"."title" FROM "posts" WHERE "posts"."published" = %s AND "users"."email" = 'a@b.c' ORDER BY "posts"."id" DESC LIMIT 20 OFFSET 40"#.to_owned(),
        ),
        ("fallback_900_kb", "postgresql", "SELECT 1 ".repeat(100_000)),
    ]
}

fn sql_normalize(c: &mut Criterion) {
    let mut group = c.benchmark_group("sql_normalize");
    for (name, system, sql) in cases() {
        group.bench_function(format!("{name}/uncached"), |b| {
            b.iter(|| normalize(black_box(&sql), Some(system)))
        });
        let mut normalizer = Normalizer::new();
        normalizer.normalize(&sql, Some(system));
        group.bench_function(format!("{name}/cached"), |b| {
            b.iter(|| normalizer.normalize(black_box(&sql), Some(system)).group)
        });
    }
    group.finish();
}

criterion_group!(benches, sql_normalize);
criterion_main!(benches);
