"""Settings shared by the whole test suite."""

import torch

# The tests run small tensors, where a second intra-op thread only adds
# synchronization. On a busy 2-core machine it made training loops up to 15 times
# slower, so one thread keeps the suite's run time predictable.
torch.set_num_threads(1)
