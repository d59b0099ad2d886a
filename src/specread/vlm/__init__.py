"""The optional VLM path: prompts, model adapters, readers, fine-tuning and tiny test models.

Modules (torch and transformers are imported lazily, inside functions, so
``import specread.vlm`` and :mod:`specread.vlm.prompt` work without the
``vlm`` extra):

* :mod:`specread.vlm.prompt`: the reference prompt, templates, answer parsing;
* :mod:`specread.vlm.backends`: transformers-native VLMs and Moondream2 behind one interface;
* :mod:`specread.vlm.reader`: ``build_vlm_reader`` (``reader="vlm"`` / ``"hybrid"``);
* :mod:`specread.vlm.data` and :mod:`specread.vlm.finetune`: resumable fine-tuning;
* :mod:`specread.vlm.tiny`: tiny random models built locally for tests.
"""

__all__: list[str] = []
