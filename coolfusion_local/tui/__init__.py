"""The `coolfusion chat` terminal UI (Textual). Never imports llama_cpp."""
