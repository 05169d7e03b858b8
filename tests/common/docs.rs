//! The project's documents, read by the tests that run what they say.

use std::fs;

/// README.md or a file under docs/, whole.
pub fn read(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The section of `doc` that starts at the heading `title` (`## ...`),
/// up to the next `## ` heading.
pub fn section<'d>(doc: &'d str, title: &str) -> &'d str {
    let s = &doc[doc.find(title).unwrap_or_else(|| panic!("the document has no {title:?}"))..];
    &s[..s[3..].find("\n## ").map_or(s.len(), |i| i + 3)]
}

/// The body of the first block fenced with ```lang after `marker` (a
/// heading or a sentence) in `doc`.
pub fn block(doc: &str, marker: &str, lang: &str) -> String {
    let at = doc.find(marker).unwrap_or_else(|| panic!("the document has no {marker:?}"));
    let fence = format!("```{lang}\n");
    let start = at + doc[at..].find(&fence).unwrap_or_else(|| panic!("no ```{lang} after {marker:?}")) + fence.len();
    let end = start + doc[start..].find("\n```").unwrap_or_else(|| panic!("the block after {marker:?} is not closed"));
    doc[start..end].to_string()
}
