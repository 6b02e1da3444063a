//! Keeps ARCHITECTURE.md true: every `crate::X` a module names (in code,
//! not comments) must sit in a lower layer of the table in ARCHITECTURE.md,
//! and every module under `src/` must be in that table. An upward import
//! (say `session` using `app`) or a new module nobody placed fails here
//! with the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `module → layer`, read from the table in ARCHITECTURE.md: rows such as
/// `| 3 | \`ldap\`, \`saml\` | ... |`.
fn layers(doc: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "", layer, modules, what, ""
        if cells.len() < 4 {
            continue;
        }
        let Ok(layer) = cells[1].parse::<u32>() else {
            continue;
        };
        for name in cells[2].split(',') {
            let name = name.trim().trim_matches('`');
            if !name.is_empty() {
                assert!(
                    out.insert(name.to_string(), layer).is_none(),
                    "ARCHITECTURE.md places `{name}` twice"
                );
            }
        }
    }
    out
}

/// The top-level module a file under `src/` belongs to (`None`: the crate
/// roots `lib.rs` and `main.rs`, which may use everything).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// `(line number, module)` for every `crate::module` outside comments.
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let len = name.len();
            // `authgate_crate::x` or `some_crate::` are not ours.
            let before = rest[..i].chars().last();
            if !name.is_empty() && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push((n + 1, name));
            }
            rest = &after[len..];
        }
    }
    out
}

/// Every violation, as `file:line: message`.
fn check(layers: &BTreeMap<String, u32>, files: &[(String, String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (file, module, text) in files {
        let Some(&mine) = layers.get(module) else {
            bad.push(format!(
                "{file}: module `{module}` is not in ARCHITECTURE.md's layer table"
            ));
            continue;
        };
        for (line, used) in uses(text) {
            if &used == module {
                continue;
            }
            match layers.get(&used) {
                None => bad.push(format!(
                    "{file}:{line}: uses `crate::{used}`, which is not in ARCHITECTURE.md's layer table"
                )),
                Some(&theirs) if theirs >= mine => bad.push(format!(
                    "{file}:{line}: `{module}` (layer {mine}) uses `crate::{used}` (layer {theirs}): arrows must point to lower layers"
                )),
                Some(_) => {}
            }
        }
    }
    bad
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_import_points_to_a_lower_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let layers = layers(&doc);
    assert!(
        layers.len() > 20,
        "the layer table was not found: {layers:?}"
    );
    let src = root.join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let mut files = Vec::new();
    for p in &paths {
        let Some(module) = module_of(&src, p) else {
            continue;
        };
        let text = std::fs::read_to_string(p).expect("read source");
        let rel = p.strip_prefix(root).unwrap_or(p).display().to_string();
        files.push((rel, module, text));
    }
    assert!(files.len() > 50, "only {} source files found", files.len());
    let bad = check(&layers, &files);
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
    // Every module placed in the table exists.
    for name in layers.keys() {
        assert!(
            src.join(format!("{name}.rs")).is_file() || src.join(name).join("mod.rs").is_file(),
            "ARCHITECTURE.md names `{name}`, which is not a module under src/"
        );
    }
}

#[test]
fn the_checker_refuses_upward_sideways_and_unplaced_imports() {
    let table = "| layer | modules | what |\n|---|---|---|\n| 0 | `clock`, `policy` | leaves |\n| 1 | `session` | sessions |\n| 2 | `app` | state |\n";
    let layers = layers(table);
    assert_eq!(layers.len(), 4);
    let file =
        |module: &str, text: &str| ("f.rs".to_string(), module.to_string(), text.to_string());
    let cases: &[(&str, &str, bool)] = &[
        ("session", "use crate::clock::now_unix;", true),
        (
            "app",
            "use crate::session::Session;\nuse crate::policy;",
            true,
        ),
        ("session", "use crate::session::cookie;", true),
        ("session", "// see crate::app::State\nfn f() {}", true),
        ("session", "let x = not_my_crate::app::State;", true),
        ("session", "use crate::app::State;", false),
        ("clock", "use crate::policy::Decision;", false),
        (
            "session",
            "    crate::app::maybe_refresh(state, &s);",
            false,
        ),
        ("session", "use crate::nowhere::X;", false),
        ("unplaced", "fn f() {}", false),
        ("clock", "crate::audit!(\"x\");", false),
    ];
    for (module, text, ok) in cases {
        let bad = check(&layers, &[file(module, text)]);
        assert_eq!(bad.is_empty(), *ok, "{module}: {text:?} → {bad:?}");
    }
}
