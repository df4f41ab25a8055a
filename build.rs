//! Embeds every TOML under `profiles/`, `isa/` and `kernels/` into the binary so that
//! `phantom-gpu` runs from any directory.
use std::{env, fs, path::Path};

fn main() {
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("embedded.rs");
    let mut code = String::new();
    for dir in ["profiles", "isa", "kernels"] {
        println!("cargo:rerun-if-changed={dir}");
        let mut files: Vec<_> = fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
        files.sort();
        code.push_str(&format!("pub const {}: &[(&str, &str)] = &[\n", dir.to_uppercase()));
        for f in files {
            let abs = fs::canonicalize(&f).unwrap();
            println!("cargo:rerun-if-changed={}", f.display());
            code.push_str(&format!(
                "    ({:?}, include_str!({:?})),\n",
                f.file_name().unwrap().to_string_lossy(),
                abs.display().to_string()
            ));
        }
        code.push_str("];\n");
    }
    fs::write(out, code).unwrap();
}
