"""coolfusion-local: fuse several local GGUF language models into one chat partner.

    from coolfusion_local import FusionEngine, Message, load_config

    with FusionEngine(load_config()) as engine:
        for event in engine.load():
            print(event)
        for event in engine.generate([Message("user", "What is 17 * 3?")]):
            print(event)
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: `import coolfusion_local` must not load llama.cpp (config checks, --help).
    if name in ("FusionEngine", "Message", "Sampling"):
        from . import engine

        return getattr(engine, name)
    if name == "load_config":
        from .config import load_config

        return load_config
    raise AttributeError(name)
