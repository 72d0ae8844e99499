//! The crate's structure, checked on every `cargo test`: the top-level folders stand in
//! an order (`docs/architecture.md`), a folder imports only folders at or below its own
//! layer, the folders' imports make no circle, and no module passes 600 lines.
//!
//! What does not hold yet is listed by name below ([`KNOWN_UPWARD`], [`KNOWN_LONG`]), so
//! that a new upward import or a new long module fails the test, and so does an entry
//! that no longer applies (the list only shrinks). Imports are read as text: every
//! `crate::<folder>` outside the file's `#[cfg(test)]` part counts.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers from the bottom up; a folder may import its own layer and those below.
const LAYERS: &[&[&str]] = &[
    &["error", "kernel"],
    &["access"],
    &["category"],
    &["customer"],
    &["records"],
    &["classification", "care", "personal", "webhook", "keylists", "reports", "transfer"],
    &["demo"],
];

/// Upward imports still to be removed (from, to): the write path's consequences are
/// called directly (a customer write checks the care engine's holding cap, a deal write
/// regrades, the audit row feeds the webhook outbox) where a typed change should carry
/// them.
const KNOWN_UPWARD: &[(&str, &str)] = &[
    ("kernel", "access"),
    ("kernel", "customer"),
    ("kernel", "records"),
    ("kernel", "webhook"),
    ("access", "webhook"),
    ("customer", "care"),
    ("customer", "classification"),
    ("records", "care"),
    ("records", "classification"),
];

/// Modules over the limit still to be split by concern.
const KNOWN_LONG: &[&str] = &["customer/mod.rs", "transfer/import/mod.rs"];

const MAX_LINES: usize = 600;

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
        if from == "lib" || from == "layers" {
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
        .filter(|f| f != "lib" && f != "layers" && layer_of(f).is_none())
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
    // Tarjan's strongly connected components, over the edges not yet known to be wrong
    // (each known upward import closes a circle with the imports going down).
    let known: BTreeSet<(&str, &str)> = KNOWN_UPWARD.iter().copied().collect();
    let graph: BTreeMap<String, Vec<String>> = graph()
        .into_iter()
        .map(|(from, tos)| {
            let kept = tos.into_iter().filter(|to| !known.contains(&(from.as_str(), to.as_str()))).collect();
            (from, kept)
        })
        .collect();
    struct State<'a> {
        graph: &'a BTreeMap<String, Vec<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        circles: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.circles.push(component);
            }
        }
    }
    let mut state = State {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        circles: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    assert!(state.circles.is_empty(), "folders importing each other in a circle: {:?}", state.circles);
}

#[test]
fn no_module_passes_600_lines() {
    let long: BTreeSet<String> =
        files().into_iter().filter(|(_, text)| text.lines().count() > MAX_LINES).map(|(rel, _)| rel).collect();
    let known: BTreeSet<String> = KNOWN_LONG.iter().map(|s| s.to_string()).collect();
    let new: Vec<_> = long.difference(&known).collect();
    let gone: Vec<_> = known.difference(&long).collect();
    assert!(new.is_empty(), "modules over {MAX_LINES} lines, split them by concern: {new:?}");
    assert!(gone.is_empty(), "KNOWN_LONG lists modules now short enough, remove them: {gone:?}");
}
