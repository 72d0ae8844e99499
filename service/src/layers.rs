//! The crate's structure, checked on every `cargo test`: the top-level folders stand in
//! an order (`docs/architecture.md`), a folder imports only folders at or below its own
//! layer, the folders' imports make no circle, and no module passes 600 lines.
//!
//! What does not hold yet is listed by name below ([`KNOWN_UPWARD`]), so that a new upward
//! import fails the test, and so does an entry that no longer applies (the list only
//! shrinks). The line limit holds for the api crate's modules too. Imports are read as
//! text: every `crate::<folder>` outside the file's `#[cfg(test)]` part counts.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers from the bottom up; a folder may import its own layer and those below.
const LAYERS: &[&[&str]] = &[
    &["error", "kernel", "catalogue"],
    &["access"],
    &["search"],
    &["policy"],
    &["category"],
    &["customer"],
    &["records"],
    &["audit", "classification", "care", "compiled", "personal", "webhook", "keylists", "reports", "transfer"],
    &["demo"],
];

/// Upward imports still to be removed (from, to): none are left. A consequence a lower
/// write has in an engine is the engine's finisher (`kernel::store::FINISHERS`) or is
/// derived from the typed change (`kernel::change`).
const KNOWN_UPWARD: &[(&str, &str)] = &[];

const MAX_LINES: usize = 600;

/// Files of `src/` that are no folder of the order: the crate root and this check.
const ROOT_FILES: &[&str] = &["lib", "layers"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source folder is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Each file of the crate, relative to `src/`, with its text.
fn files() -> Vec<(String, String)> {
    let mut paths = Vec::new();
    sources(&root(), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The top-level folder (or file) a path of `src/` belongs to.
fn folder(rel: &str) -> &str {
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// The folders named after `crate::` in `text` (the part before `#[cfg(test)]`).
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(i) = code[at..].find("crate::") {
        let start = at + i;
        let before = if start == 0 { b' ' } else { bytes[start - 1] };
        let name: String = code[start + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let part_of_a_longer_path = before.is_ascii_alphanumeric() || before == b'_' || before == b':';
        if !part_of_a_longer_path && !name.is_empty() {
            found.insert(name);
        }
        at = start + 7;
    }
    found
}

fn layer_of(folder: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&folder))
}

/// Folder → folders it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files() {
        let from = folder(&rel).to_string();
        if ROOT_FILES.contains(&from.as_str()) {
            continue;
        }
        for to in imports(&text) {
            if to != from && layer_of(&to).is_some() {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

#[test]
fn every_folder_has_a_layer() {
    let mut missing: Vec<String> = files()
        .iter()
        .map(|(rel, _)| folder(rel).to_string())
        .filter(|f| !ROOT_FILES.contains(&f.as_str()) && layer_of(f).is_none())
        .collect();
    missing.dedup();
    assert!(missing.is_empty(), "folders without a layer in LAYERS: {missing:?}");
}

#[test]
fn lower_folders_never_import_higher_ones() {
    let mut upward = BTreeSet::new();
    for (from, tos) in graph() {
        for to in tos {
            if layer_of(&to) > layer_of(&from) {
                upward.insert((from.clone(), to));
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN_UPWARD.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let new: Vec<_> = upward.difference(&known).collect();
    let gone: Vec<_> = known.difference(&upward).collect();
    assert!(new.is_empty(), "imports against the layer order: {new:?}");
    assert!(gone.is_empty(), "KNOWN_UPWARD lists imports that are gone, remove them: {gone:?}");
}

#[test]
fn folders_import_no_circle() {
    // A depth-first walk over the imports not yet known to be wrong (each known upward
    // import closes a circle with the imports going down); an import back to a folder on
    // the current path is a circle.
    fn walk<'a>(
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        from: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = path.iter().position(|f| *f == from) {
            return Some(path[at..].to_vec());
        }
        if !done.insert(from) {
            return None;
        }
        path.push(from);
        let circle = graph.get(from).into_iter().flatten().find_map(|to| walk(graph, to, path, done));
        path.pop();
        circle
    }
    let mut graph = graph();
    for (from, to) in KNOWN_UPWARD {
        if let Some(tos) = graph.get_mut(*from) {
            tos.remove(*to);
        }
    }
    let mut done = BTreeSet::new();
    for from in graph.keys() {
        let circle = walk(&graph, from, &mut Vec::new(), &mut done);
        assert!(circle.is_none(), "folders importing each other in a circle: {circle:?}");
    }
}

#[test]
fn no_module_passes_600_lines() {
    // This crate's modules and the api's (the schema, the HTTP glue, the workers).
    let api = root().join("../../api/src");
    let mut paths = Vec::new();
    sources(&root(), &mut paths);
    sources(&api, &mut paths);
    let long: Vec<String> = paths
        .iter()
        .filter(|p| std::fs::read_to_string(p).unwrap().lines().count() > MAX_LINES)
        .map(|p| p.display().to_string())
        .collect();
    assert!(paths.iter().any(|p| p.starts_with(&api)), "the api's sources were not found");
    assert!(long.is_empty(), "modules over {MAX_LINES} lines, split them by concern: {long:?}");
}
