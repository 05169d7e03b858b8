//! Which archive entries a partial restore (`--schema`, `--table`) brings.
//!
//! `pg_restore -t T` restores a table's definition and data only: not its
//! constraints, indexes, identity, row-level security, policies, comments,
//! grants or partitions, so a protected table could come back readable by
//! every grantee. coffer selects the entries itself, from the archive's own
//! table of contents and dependencies, and hands pg_restore the list (`-L`):
//!
//! - the named tables (and views, sequences, foreign tables), or every
//!   object of the named schemas;
//! - then, until nothing changes, every entry that belongs to a selected
//!   one: its data, constraints, indexes, triggers, rules, policies, RLS flag,
//!   comments, grants, security labels, defaults, statistics, sequence
//!   ownership and values, and partitions (a partition's table depends on
//!   its parent), with the sequences a selected table owns;
//! - an entry that joins several relations (a foreign key, a partition's
//!   attachment) only when all of them are selected; the others are
//!   reported as left out, never silently dropped.

use super::archive::Entry;
use super::sql;
use std::collections::HashSet;

/// Kinds a `--table` name can match (as `pg_restore -t`).
const RELATION_KINDS: &[&str] = &["TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "SEQUENCE"];

/// Relations whose contents (rows, columns) other entries attach to.
const TABLE_KINDS: &[&str] = &["TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE"];

/// Kinds that belong to the object they depend on.
const ATTACHED_KINDS: &[&str] = &[
    "TABLE DATA",
    "MATERIALIZED VIEW DATA",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "INDEX",
    "TRIGGER",
    "RULE",
    "POLICY",
    "ROW SECURITY",
    "COMMENT",
    "ACL",
    "SECURITY LABEL",
    "DEFAULT",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "STATISTICS",
    // A partition or inheritance child, or an identity column's sequence.
    "TABLE",
    "SEQUENCE",
];

/// Kinds that join several relations: selected only when all are.
const JOINING_KINDS: &[&str] = &["FK CONSTRAINT", "TABLE ATTACH", "INDEX ATTACH"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectError(pub String);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Dump ids to restore, in archive order.
    pub ids: Vec<u32>,
    /// Entries that belong to the selection but join it to something left
    /// out (a foreign key to a table not restored): "FK CONSTRAINT public ord ord_fkey".
    pub left_out: Vec<u32>,
}

fn names_of(e: &Entry) -> (String, String) {
    (e.namespace.clone().unwrap_or_default(), e.tag.clone())
}

/// A `--table` argument: `name`, `schema.name`, or with "quoted" parts.
/// Returns the (schema, table) pairs it may mean.
fn table_patterns(arg: &str) -> Result<Vec<(Option<String>, String)>, SelectError> {
    if arg.contains('"') {
        let parts = sql::qualified_name(arg).map_err(|e| SelectError(format!("--table {arg:?}: {}", e.what)))?;
        return match parts.as_slice() {
            [t] => Ok(vec![(None, t.clone())]),
            [s, t] => Ok(vec![(Some(s.clone()), t.clone())]),
            _ => Err(SelectError(format!("--table {arg:?}: give table or schema.table"))),
        };
    }
    // Unquoted names are taken as written (pg_restore -t matches them exactly),
    // as a whole name or as schema.name.
    let mut v = vec![(None, arg.to_string())];
    if let Some((s, t)) = arg.split_once('.') {
        v.push((Some(s.to_string()), t.to_string()));
    }
    Ok(v)
}

/// `schema_exists(s)`: the target already has schema s (its SCHEMA entry is
/// then not restored).
pub fn select(
    entries: &[Entry],
    schemas: &[String],
    tables: &[String],
    schema_exists: &dyn Fn(&str) -> bool,
) -> Result<Selection, SelectError> {
    let mut chosen: HashSet<u32> = HashSet::new();
    let in_schemas = |e: &Entry| schemas.is_empty() || schemas.iter().any(|s| e.namespace.as_deref() == Some(s));
    let relations = || entries.iter().filter(|e| RELATION_KINDS.contains(&e.desc.as_str()));
    for arg in tables {
        let patterns = table_patterns(arg)?;
        let found: Vec<&Entry> = relations()
            .filter(|e| in_schemas(e))
            .filter(|e| {
                let (s, t) = names_of(e);
                patterns.iter().any(|(ps, pt)| *pt == t && ps.as_ref().is_none_or(|ps| *ps == s))
            })
            .collect();
        if found.is_empty() {
            return Err(SelectError(no_match(
                "table",
                arg,
                relations().map(names_of).map(|(s, t)| format!("{s}.{t}")),
            )));
        }
        chosen.extend(found.iter().map(|e| e.id));
    }
    if tables.is_empty() {
        for s in schemas {
            let before = chosen.len();
            chosen.extend(entries.iter().filter(|e| e.namespace.as_deref() == Some(s)).map(|e| e.id));
            if chosen.len() == before && !entries.iter().any(|e| e.desc == "SCHEMA" && e.tag == *s) {
                let known = entries.iter().filter(|e| e.desc == "SCHEMA").map(|e| e.tag.clone());
                return Err(SelectError(no_match("schema", s, known.chain(["public".to_string()]))));
            }
        }
    }
    // The schemas of what was chosen, with their owner, comment and grants
    // (through the closure below), unless the target has them already.
    let mut namespaces: Vec<String> = schemas.to_vec();
    namespaces.extend(entries.iter().filter(|e| chosen.contains(&e.id)).filter_map(|e| e.namespace.clone()));
    for e in entries.iter().filter(|e| e.desc == "SCHEMA" && namespaces.contains(&e.tag)) {
        if !schema_exists(&e.tag) {
            chosen.insert(e.id);
        }
    }

    let by_id: std::collections::HashMap<u32, &Entry> = entries.iter().map(|e| (e.id, e)).collect();
    let is = |id: &u32, kinds: &[&str]| by_id.get(id).is_some_and(|d| kinds.contains(&d.desc.as_str()));
    // Dependencies on an ACL only order grants; they do not make an entry belong.
    let real_deps = |e: &Entry| e.deps.iter().filter(|d| !is(d, &["ACL"])).copied().collect::<Vec<u32>>();
    loop {
        let mut added = false;
        for e in entries {
            if chosen.contains(&e.id) {
                // A table's own sequences come with it (serial columns).
                if e.desc == "SEQUENCE OWNED BY" {
                    for d in &e.deps {
                        if is(d, &["SEQUENCE"]) && chosen.insert(*d) {
                            added = true;
                        }
                    }
                }
                continue;
            }
            let belongs = match e.desc.as_str() {
                // Partitions and children depend on their parent table, an
                // identity sequence on its table; a table of another schema
                // that merely uses a chosen type does not belong.
                "TABLE" | "SEQUENCE" => real_deps(e).iter().any(|d| chosen.contains(d) && is(d, &["TABLE"])),
                // Anything else belongs to what it depends on, but only when
                // every table it depends on is chosen: a trigger on a table
                // left out does not come with the function it calls.
                kind => {
                    let deps = real_deps(e);
                    ATTACHED_KINDS.contains(&kind)
                        && deps.iter().any(|d| chosen.contains(d))
                        && deps.iter().filter(|d| is(d, TABLE_KINDS)).all(|d| chosen.contains(d))
                }
            };
            if belongs {
                chosen.insert(e.id);
                added = true;
            }
        }
        if !added {
            break;
        }
    }
    let mut left_out = Vec::new();
    for e in entries.iter().filter(|e| JOINING_KINDS.contains(&e.desc.as_str())) {
        let relation_deps: Vec<u32> =
            e.deps.iter().copied().filter(|d| is(d, &["TABLE", "INDEX", "CONSTRAINT", "FOREIGN TABLE"])).collect();
        let touched = relation_deps.iter().any(|d| chosen.contains(d));
        if touched && relation_deps.iter().all(|d| chosen.contains(d)) {
            chosen.insert(e.id);
        } else if touched {
            left_out.push(e.id);
        }
    }
    // Comments and grants on what was just added.
    for e in entries {
        if ["COMMENT", "ACL", "SECURITY LABEL"].contains(&e.desc.as_str())
            && !chosen.contains(&e.id)
            && real_deps(e).iter().any(|d| chosen.contains(d) && is(d, JOINING_KINDS))
        {
            chosen.insert(e.id);
        }
    }
    Ok(Selection { ids: entries.iter().map(|e| e.id).filter(|id| chosen.contains(id)).collect(), left_out })
}

/// "--table X matches no table in the dump; close matches: ...".
fn no_match(what: &str, arg: &str, candidates: impl Iterator<Item = String>) -> String {
    let lower = arg.to_lowercase();
    let bare = lower.rsplit('.').next().unwrap_or(&lower).trim_matches('"').to_string();
    let mut close: Vec<(usize, String)> = candidates
        .filter_map(|c| {
            let cl = c.to_lowercase();
            let cbare = cl.rsplit('.').next().unwrap_or(&cl).to_string();
            let d = edit_distance(&bare, &cbare);
            (d <= 2.max(bare.len() / 3) || cbare.contains(&bare) || bare.contains(&cbare)).then_some((d, c))
        })
        .collect();
    close.sort();
    close.dedup_by(|a, b| a.1 == b.1);
    let list: Vec<String> = close.into_iter().take(5).map(|(_, c)| c).collect();
    if list.is_empty() {
        format!("--{what} {arg:?} matches no {what} in the dump")
    } else {
        format!("--{what} {arg:?} matches no {what} in the dump; close matches: {}", list.join(", "))
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::archive::Scanner;

    fn fixture() -> Vec<Entry> {
        let mut s = Scanner::new();
        s.feed(include_bytes!("../../fixtures/postgres/archive.pgc")).unwrap();
        s.finish().unwrap().entries
    }

    fn chosen(entries: &[Entry], sel: &Selection) -> Vec<String> {
        let by_id: std::collections::HashMap<u32, &Entry> = entries.iter().map(|e| (e.id, e)).collect();
        sel.ids.iter().map(|id| format!("{} {}", by_id[id].desc, by_id[id].tag)).collect()
    }

    #[test]
    fn a_table_comes_with_everything_that_belongs_to_it() {
        let e = fixture();
        let sel = select(&e, &[], &["\"Sales Dept\".\"Order Items\"".into()], &|_| false).unwrap();
        let got = chosen(&e, &sel);
        for want in [
            "SCHEMA Sales Dept",
            "COMMENT SCHEMA \"Sales Dept\"",
            "TABLE Order Items",
            "COMMENT TABLE \"Order Items\"",
            "ACL TABLE \"Order Items\"",
            "SEQUENCE Order Items_id_seq",
            "TABLE DATA Order Items",
            "SEQUENCE SET Order Items_id_seq",
            "CONSTRAINT Order Items Order Items_pkey",
            "INDEX Order Items_v_idx",
            "ROW SECURITY Order Items",
            "POLICY Order Items p1",
        ] {
            assert!(got.contains(&want.to_string()), "{want} missing from {got:?}");
        }
        assert_eq!(got.len(), 12, "{got:?}");
        // The same table named unquoted, schema.table, when the schema exists.
        let sel2 = select(&e, &[], &["Sales Dept.Order Items".into()], &|_| true).unwrap();
        assert_eq!(sel2.ids.len(), 10);
    }

    #[test]
    fn serial_sequences_partitions_and_foreign_keys() {
        let e = fixture();
        let got = chosen(&e, &select(&e, &[], &["ord".into()], &|_| true).unwrap());
        for want in
            ["TABLE ord", "SEQUENCE ord_id_seq", "SEQUENCE OWNED BY ord_id_seq", "DEFAULT ord id", "TABLE DATA ord"]
        {
            assert!(got.contains(&want.to_string()), "{want} missing from {got:?}");
        }
        // ord's foreign key needs cust, which is not restored: left out, and said so.
        let sel = select(&e, &[], &["ord".into()], &|_| true).unwrap();
        assert!(!got.iter().any(|g| g.starts_with("FK CONSTRAINT")));
        assert_eq!(sel.left_out.len(), 1);
        let both = chosen(&e, &select(&e, &[], &["ord".into(), "public.cust".into()], &|_| true).unwrap());
        assert!(both.contains(&"FK CONSTRAINT ord ord_cust_id_fkey".to_string()), "{both:?}");

        let meas = chosen(&e, &select(&e, &[], &["meas".into()], &|_| true).unwrap());
        for want in [
            "TABLE meas_2025",
            "TABLE meas_2026",
            "TABLE ATTACH meas_2025",
            "TABLE DATA meas_2026",
            "INDEX meas_d_idx",
            "INDEX meas_2025_d_idx",
            "INDEX ATTACH meas_2025_d_idx",
        ] {
            assert!(meas.contains(&want.to_string()), "{want} missing from {meas:?}");
        }
    }

    #[test]
    fn a_name_that_matches_nothing_is_an_error_with_close_matches() {
        let e = fixture();
        let err = select(&e, &[], &["orders".into()], &|_| true).unwrap_err().0;
        assert!(err.contains("--table \"orders\" matches no table"), "{err}");
        assert!(err.contains("public.ord"), "{err}");
        let err = select(&e, &[], &["archive.ord".into()], &|_| true).unwrap_err().0;
        assert!(err.contains("public.ord"), "{err}");
        let err = select(&e, &["sales".into()], &[], &|_| true).unwrap_err().0;
        assert!(err.contains("--schema \"sales\"") && err.contains("Sales Dept"), "{err}");
        // --schema and --table together: the table within the schema.
        assert!(select(&e, &["public".into()], &["Order Items".into()], &|_| true).is_err());
    }

    #[test]
    fn a_schema_brings_its_objects_and_itself_when_missing() {
        let e = fixture();
        let got = chosen(&e, &select(&e, &["Sales Dept".into()], &[], &|_| false).unwrap());
        assert!(got.contains(&"SCHEMA Sales Dept".to_string()));
        assert!(got.contains(&"COMMENT SCHEMA \"Sales Dept\"".to_string()));
        assert!(got.contains(&"POLICY Order Items p1".to_string()));
        assert!(!got.iter().any(|g| g.contains("cust")));
        let existing = chosen(&e, &select(&e, &["Sales Dept".into()], &[], &|_| true).unwrap());
        assert!(!existing.contains(&"SCHEMA Sales Dept".to_string()));
    }
}
