"""``elasticnas`` with batch-norm synchronisation switched off: the distributed test's negative control.

    python -m torch.distributed.run --nproc_per_node=2 tests/supernet/broken_sync.py train ...
"""

import sys

import elasticnas.supernet.layers.norm as norm

norm.rank_and_world = lambda: (0, 1)  # every process normalises with its own half-batch statistics

from elasticnas.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
