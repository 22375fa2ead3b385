"""Training: its settings (:mod:`iman.training.settings`: ``TrainConfig``, the loss registry),
the trainer (loop, checkpoints, resume), losses, pretrained weights, and one training node as
the train rule runs it (:mod:`iman.training.node`)."""
