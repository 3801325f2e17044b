//! Queries: normalised SQL statements across the kept requests, and one statement
//! with the requests that ran it.

use backstop_store::{RequestQuery, StatementStats, StoreError, StoreReader};
use maud::{Markup, html};

use super::performance::request_table;
use super::{Ctx, Page, Section, empty, enc, layout, range_picker};
use crate::format::{count, dur};

pub(crate) fn page(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let since = ctx.now - ctx.range().duration();
    let query = RequestQuery::new().since(since).limit(50);
    let statements = reader.statements(query.filter(), None)?;
    let body = html! {
        div.head {
            h1 { "Queries" }
            (range_picker(ctx, "/queries"))
        }
        p.meta { "Normalised statements across every kept request, the most total time first." }
        @if statements.is_empty() { (empty("No queries recorded in this range.")) }
        @else { section.panel { (statement_table(ctx, &statements)) } }
    };
    Ok(Page::Html(layout(ctx, Section::Queries, "Queries", body)))
}

pub(crate) fn statement_table(ctx: &Ctx<'_>, statements: &[StatementStats]) -> Markup {
    html! {
        div.table-wrap { table.statements {
            thead { tr {
                th { "Statement" } th.num { "Runs" } th.num.wide { "Requests" } th.num { "Total" }
                th.num.wide { "Mean" } th.num.wide { "p95" } th.num.wide { "Rows" }
            } }
            tbody {
                @for s in statements {
                    tr {
                        td.sqlcell {
                            a href={ (ctx.href("/queries/statement")) "?sql=" (enc(&s.statement)) } { code { (s.statement) } }
                            @if !s.routes.is_empty() {
                                div.meta { @for (i, r) in s.routes.iter().enumerate() { @if i > 0 { ", " } (r) } }
                            }
                        }
                        td.num { (count(s.count)) }
                        td.num.wide { (count(s.requests)) }
                        td.num { (dur(s.total)) }
                        td.num.wide { (dur(s.mean)) }
                        td.num.wide { (dur(s.p95)) }
                        td.num.wide { (s.rows.map_or("–".to_owned(), count)) }
                    }
                }
            }
        } }
    }
}

pub(crate) fn statement(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let Some(sql) = ctx.params.get("sql") else {
        return Ok(Page::NotFound("Which statement? The link lost it.".into()));
    };
    let runs = reader.statement_runs(sql, 50)?;
    let requests: Vec<_> = runs.iter().map(|r| r.request.clone()).collect();
    let body = html! {
        div.crumbs { a href=(ctx.href("/queries")) { "Queries" } " / statement" }
        h1 { "Statement" }
        pre.block.sql { (sql) }
        @if runs.is_empty() { (empty("No kept request ran this statement.")) }
        @else {
            div.grid2 {
                section.panel {
                    h2 { "Requests that ran it, the most time in it first" }
                    div.table-wrap { table {
                        thead { tr { th { "Route" } th.num { "Runs" } th.num { "Time in it" } } }
                        tbody {
                            @for r in &runs {
                                tr {
                                    td.wrap { a href=(ctx.href(&format!("/requests/{}", r.request.event_id))) { (r.request.name) } }
                                    td.num { (r.count) }
                                    td.num { (dur(r.total)) }
                                }
                            }
                        }
                    } }
                }
                section.panel { h2 { "Those requests" } (request_table(ctx, &requests)) }
            }
        }
    };
    Ok(Page::Html(layout(ctx, Section::Queries, "Statement", body)))
}
