"""The one training engine every occ4d model trains through.

- ``config``: frozen ``DataConfig`` / ``OptimConfig`` / ``RunConfig`` / ``TrainConfig`` and ``Preset``;
- ``loop.train(spec, cfg)``: the loop (setup, loop, log, checkpoint, evaluate), alone or under torchrun;
- ``registry``: ``ModelSpec`` and ``SPECS`` (add one line there to make a model trainable with
  ``occ4d train <name>``), ``load_model(run)`` to get a trained model back;
- ``checkpoint`` (safetensors + JSON, atomic, keep-last-k), ``ema``, ``schedule``, ``logger``,
  ``distributed`` (degrades to one process).

Each model's recipe (presets, data, loss, evaluation: its ``ModelSpec``) lives beside the model
in ``occ4d.models.<family>.recipe``; ``occ4d.models.tokenizers.recipe`` is the worked example.
"""
