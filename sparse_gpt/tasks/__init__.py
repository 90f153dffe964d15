"""Twenty binary next-token tasks on Python code (docs/method.md section 6).

A task is a function from a `random.Random` to a minimal `Pair`, added with `register`;
`sample_pairs` draws a split, `resolve_task` encodes it for a tokenizer, and `task_loss`
scores a model's logits on it.

A candidate is the token the model must predict, so where the GPT-2 pre-tokenizer splits
the paper's candidate, the task asks for its first piece: `=None` becomes `=`, `):\n`
`):`, `.add` `.`; `'r'` becomes `r` after a prompt that ends in the opening quote; a
newline is the newline plus the next line's indentation but one space (`vocab.newline`).
"""

from sparse_gpt.tasks.errors import TaskError, TaskNotPosable
from sparse_gpt.tasks.loss import task_loss, task_loss_at_last
from sparse_gpt.tasks.pairs import SPLITS, sample_pairs
from sparse_gpt.tasks.registry import Pair, Task, get, names, register
from sparse_gpt.tasks.resolve import TaskBatch, resolve_pairs, resolve_task

# The built-in tasks register themselves when their modules are imported.
from sparse_gpt.tasks import (  # noqa: F401  pylint: disable=g-bad-import-order
    brackets, control_flow, definitions, files, strings, variables)
