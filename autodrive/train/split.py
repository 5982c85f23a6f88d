"""Split examples into training and validation sets by contiguous blocks of records.

Neighbouring frames of a tub are near-copies, so a split by single frames
puts a twin of almost every validation frame into the training set and
overstates validation accuracy. Whole blocks of ``split_block`` consecutive
records go to one side instead. Blocks never cross tub boundaries.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def block_split(
    tub_ids: np.ndarray,
    block_length: int,
    validation_fraction: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (training positions, validation positions), each sorted.

    ``tub_ids`` gives the tub of each example, in record order. Blocks are
    drawn in a seeded random order, and each one goes to validation when that
    brings the validation count closer to ``validation_fraction`` of all
    examples. When there are fewer than two blocks, the block length is
    shortened so that both sets get at least one block.
    """
    count = len(tub_ids)
    if count < 2:
        raise ValueError(f"cannot split {count} example(s) into training and validation sets")

    block_ids = _block_ids(tub_ids, block_length)
    block_total = int(block_ids.max()) + 1
    if block_total < 2:
        shorter = max(1, count // 5)
        log.warning("only %d records: using validation blocks of %d records instead of %d", count, shorter, block_length)
        block_ids = _block_ids(tub_ids, shorter)
        block_total = int(block_ids.max()) + 1

    block_sizes = np.bincount(block_ids, minlength=block_total)
    target = validation_fraction * count
    order = np.random.default_rng(seed).permutation(block_total)

    validation_blocks: list[int] = []
    validation_count = 0
    for block in order:
        size = int(block_sizes[block])
        if abs(validation_count + size - target) < abs(validation_count - target):
            validation_blocks.append(int(block))
            validation_count += size

    # Both sets need at least one block, whatever the fraction and block sizes.
    if not validation_blocks:
        validation_blocks.append(int(order[0]))
    if len(validation_blocks) == block_total:
        validation_blocks.pop()

    is_validation = np.isin(block_ids, validation_blocks)
    return np.flatnonzero(~is_validation), np.flatnonzero(is_validation)


def _block_ids(tub_ids: np.ndarray, block_length: int) -> np.ndarray:
    """Number the blocks of consecutive examples, restarting the count at each tub."""
    block_ids = np.empty(len(tub_ids), dtype=np.int64)
    next_block = 0
    start = 0
    while start < len(tub_ids):
        end = start
        while end < len(tub_ids) and tub_ids[end] == tub_ids[start]:
            end += 1
        positions = np.arange(end - start)
        block_ids[start:end] = next_block + positions // block_length
        next_block = int(block_ids[end - 1]) + 1
        start = end
    return block_ids
