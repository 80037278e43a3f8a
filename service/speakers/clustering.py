"""Which embedded windows share a voice: agglomerative clustering (scikit-learn) on cosine distance.

The number of speakers is where average-linkage merging would join two groups farther apart than
DISTANCE_THRESHOLD (measured on the espeak-ng corpus of bench/diarization.py; docs/accuracy.md), bounded by
the request's min/max speakers. Groups holding fewer than MIN_SHARE of the windows are outliers (a cough,
two voices in one window) and join their nearest group, unless min_speakers needs them.
"""

from __future__ import annotations

import numpy as np

DISTANCE_THRESHOLD = 0.25  # mean cosine distance between two groups' pieces: above it, two voices
MIN_SHARE = 0.05  # of the pieces: a smaller group is folded into its nearest neighbour
MAX_SPEAKERS = 8  # when the request gives no max_speakers


def cluster(vectors: np.ndarray, min_speakers: int = 1, max_speakers: int | None = None) -> np.ndarray:
    """One label (0..k-1) per row of `vectors`; rows are L2-normed embeddings."""
    from sklearn.cluster import AgglomerativeClustering

    n = len(vectors)
    upper = min(max_speakers or MAX_SPEAKERS, n)
    if n < 2 or upper <= 1:
        return np.zeros(n, dtype=int)
    found = AgglomerativeClustering(
        n_clusters=None, distance_threshold=DISTANCE_THRESHOLD, metric="cosine", linkage="average"
    ).fit_predict(vectors)
    count = int(np.sum(np.bincount(found) >= MIN_SHARE * n))
    count = min(max(count, min_speakers, 1), upper)
    if count == 1:
        return np.zeros(n, dtype=int)
    labels = AgglomerativeClustering(n_clusters=count, metric="cosine", linkage="average").fit_predict(
        vectors
    )
    return fold_outliers(vectors, labels, keep=max(min_speakers, 1))


def fold_outliers(vectors: np.ndarray, labels: np.ndarray, keep: int) -> np.ndarray:
    """Groups smaller than MIN_SHARE of the windows join the nearest larger group's centroid, while more
    than `keep` groups remain."""
    labels = labels.copy()
    while True:
        sizes = np.bincount(labels)
        present = np.flatnonzero(sizes)
        small = [g for g in present if sizes[g] < MIN_SHARE * len(labels)]
        if not small or len(present) <= keep:
            break
        victim = min(small, key=lambda g: sizes[g])
        others = [g for g in present if g != victim]
        centroids = np.stack([vectors[labels == g].mean(axis=0) for g in others])
        rows = np.flatnonzero(labels == victim)
        labels[rows] = np.asarray(others)[np.argmax(vectors[rows] @ centroids.T, axis=1)]
    return np.unique(labels, return_inverse=True)[1]
