"""Benchmarks (run them with `python -m benchmarks.NAME --json`)."""


def consecutive_clips(lengths, n, classes=3):
    """A ``WindowSet`` of clips of ``lengths`` frames over consecutive frame rows (class = clip % classes)."""
    import numpy as np

    from mer_keras.pipeline.windows import WindowSet, sliding_windows

    rows, clip_index, start = [], [], 0
    for i, length in enumerate(lengths):
        rows.append(sliding_windows(np.arange(start, start + int(length)), n))
        clip_index.append(np.full(len(rows[-1]), i, np.int32))
        start += int(length)
    clip_index = np.concatenate(clip_index)
    return WindowSet(
        np.concatenate(rows).astype(np.int32), clip_index, clip_index % classes, tuple(range(len(rows)))
    )
