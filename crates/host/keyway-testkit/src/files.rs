//! What a test reads back from a directory.

use std::path::Path;

/// The names of the entries in `dir`, sorted (panics if it cannot be
/// read or a name is not UTF-8).
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let name = e.expect("a directory entry").file_name();
            name.into_string().expect("a UTF-8 file name")
        })
        .collect();
    names.sort();
    names
}
