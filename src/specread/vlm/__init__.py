"""The optional VLM path: prompts, model adapters, readers and fine-tuning.

Modules (torch and transformers are imported lazily, inside functions, so
``import specread.vlm`` and :mod:`specread.vlm.prompt` work without the
``vlm`` extra):

* :mod:`specread.vlm.prompt`: the reference prompt, templates, answer parsing;
* :mod:`specread.vlm.base`: the backend protocols (``VlmBackend``, ``TrainableVlmBackend``);
* :mod:`specread.vlm.backends`: ``load_backend``, which picks the adapter: :mod:`specread.vlm.hf`
  (transformers-native VLMs) or :mod:`specread.vlm.moondream` (Moondream2), both built on
  :mod:`specread.vlm.training` (device, dtype, freezing, LoRA, checkpoint state);
* :mod:`specread.vlm.reader`: ``build_vlm_reader`` (``reader="vlm"`` / ``"hybrid"``);
* :mod:`specread.vlm.data` and :mod:`specread.vlm.finetune`: resumable fine-tuning.

The tiny random models the VLM tests build live with the tests (``tests/vlm_tiny.py``).
"""

__all__: list[str] = []
