"""From clips to batches: distinct frames, their cached features, windows of N frames, tf.data."""
