//! Glob filters over stored paths, shared by backup excludes and restore
//! includes/excludes. A pattern with a `/` matches the whole stored path (`*`
//! stays inside one component, `**` crosses them); a pattern without one
//! matches any single component's name, as in restic and .gitignore.

use crate::error::{Error, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

pub struct Patterns {
    full: GlobSet,
    name: GlobSet,
    empty: bool,
}

impl Patterns {
    pub fn new(patterns: &[String]) -> Result<Patterns> {
        let mut full = GlobSetBuilder::new();
        let mut name = GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
            let glob = GlobBuilder::new(trimmed)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::InvalidPattern { pattern: p.clone(), reason: e.kind().to_string() })?;
            if trimmed.contains('/') {
                full.add(glob);
            } else {
                name.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| Error::InvalidPattern { pattern: patterns.join(" "), reason: e.to_string() })
        };
        Ok(Patterns { full: build(full)?, name: build(name)?, empty: patterns.is_empty() })
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Does the pattern set match this path itself (not its ancestors)?
    pub fn matches(&self, path: &[u8]) -> bool {
        if self.empty {
            return false;
        }
        let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        self.full.is_match(OsStr::from_bytes(path)) || self.name.is_match(OsStr::from_bytes(base))
    }

    /// Does it match this path or any of its ancestors?
    pub fn matches_path_or_ancestor(&self, path: &[u8]) -> bool {
        if self.empty {
            return false;
        }
        let mut end = path.len();
        loop {
            if self.matches(&path[..end]) {
                return true;
            }
            match path[..end].iter().rposition(|&b| b == b'/') {
                Some(i) => end = i,
                None => return false,
            }
        }
    }
}

/// Restore selection: included (no includes = all) and not excluded, where
/// a match on a directory covers everything below it.
pub struct Selection {
    include: Patterns,
    exclude: Patterns,
}

impl Selection {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Selection> {
        Ok(Selection { include: Patterns::new(include)?, exclude: Patterns::new(exclude)? })
    }

    pub fn selects(&self, path: &[u8]) -> bool {
        (self.include.is_empty() || self.include.matches_path_or_ancestor(path))
            && !self.exclude.matches_path_or_ancestor(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Patterns {
        Patterns::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn name_and_path_patterns() {
        let p = pats(&["*.log", "data/cache", "src/**/*.tmp"]);
        assert!(p.matches(b"a/b/x.log"));
        assert!(p.matches(b"x.log"));
        assert!(p.matches(b"data/cache"));
        assert!(!p.matches(b"other/data/cache"));
        assert!(p.matches(b"src/a/b/c.tmp"));
        assert!(!p.matches(b"a/x.logs"));
        assert!(p.matches_path_or_ancestor(b"data/cache/deep/file"));
    }

    #[test]
    fn star_does_not_cross_components() {
        let p = pats(&["docs/*"]);
        assert!(p.matches(b"docs/a"));
        assert!(!p.matches(b"docs/a/b"));
        assert!(p.matches_path_or_ancestor(b"docs/a/b"));
    }

    #[test]
    fn selection() {
        let s = Selection::new(&["tree/docs".into()], &["*.bak".into()]).unwrap();
        assert!(s.selects(b"tree/docs/readme"));
        assert!(!s.selects(b"tree/docs/readme.bak"));
        assert!(!s.selects(b"tree/src/main.rs"));
        assert!(Selection::new(&[], &[]).unwrap().selects(b"anything"));
        assert!(Patterns::new(&["a[".into()]).is_err());
    }
}
