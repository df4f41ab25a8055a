//! HuggingFace `config.json` → `TransformerConfig`.
