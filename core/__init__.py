"""Shared helpers of every room (``elasticnas.core``): errors, registries, atomic files,
journals, typed configs, checkpoints and distributed helpers.

Nothing here imports ``elasticnas.supernet``, ``hardware``, ``predictors`` or ``search``.
"""
