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
    # Lazy: `import coolfusion_local` (the CLI's, the tests') need not read the engine at all.
    if name in ("FusionEngine", "load_config"):
        from . import fusion_engine

        return getattr(fusion_engine, name)
    if name in ("Message", "Sampling"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(name)
