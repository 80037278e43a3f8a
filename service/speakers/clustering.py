"""Which embedded pieces share a voice: groups split in two while their pieces clearly form two groups.

Starting from one group, a group's pieces are centred on their own mean (so that what they share, the
room, the microphone, the accent, or the other speakers' side of a wider split, no longer counts) and cut in
two by average-linkage agglomerative clustering (scikit-learn); the cut is kept when its silhouette
(scikit-learn, cosine) is at least SPLIT_SILHOUETTE, the clearest cut first. A rule on each group's own
spread rather than one absolute cosine distance: two voices that the encoder places close together (two men
of one accent, a family's voices) still split when they are closer to themselves than to each other, and a
conversation of four voices in two pairs (two women, two men) splits each pair after the first cut
separates the pairs. Measured on the corpus of bench/diarization.py (docs/accuracy.md). Groups holding
fewer than MIN_SHARE of the pieces are outliers (a cough, two voices in one piece) and join their nearest
group, unless min_speakers needs them.
"""

from __future__ import annotations

import numpy as np

SPLIT_SILHOUETTE = 0.25  # a cut's silhouette at least this: two voices (one voice's cuts measured <= 0.26)
MIN_SPLIT = 3  # pieces a group needs to be cut
MIN_SHARE = 0.05  # of the pieces: a smaller group is folded into its nearest neighbour
MAX_SPEAKERS = 8  # when the request gives no max_speakers


def cluster(vectors: np.ndarray, min_speakers: int = 1, max_speakers: int | None = None) -> np.ndarray:
    """One label (0..k-1) per row of `vectors`; rows are L2-normed embeddings."""
    n = len(vectors)
    upper = min(max_speakers or MAX_SPEAKERS, n)
    labels = np.zeros(n, dtype=int)
    if n < 2 or upper <= 1:
        return labels
    cuts: dict[int, tuple[float, np.ndarray]] = {}
    while labels.max() + 1 < upper:
        for group in set(range(labels.max() + 1)) - set(cuts):
            cuts[group] = cut(vectors[labels == group])
        group = max(cuts, key=lambda g: cuts[g][0])
        score, halves = cuts.pop(group)
        if (score < SPLIT_SILHOUETTE and labels.max() + 1 >= min_speakers) or not halves.any():
            break
        rows = np.flatnonzero(labels == group)
        labels[rows[halves == 1]] = labels.max() + 1
    return fold_outliers(vectors, labels, keep=max(min_speakers, 1))


def cut(vectors: np.ndarray) -> tuple[float, np.ndarray]:
    """A group's best cut in two (0/1 per row) and its silhouette; -1 where it has too few pieces to cut,
    and a cut that leaves one piece alone scores -0.5 (an outlier, not a voice; min_speakers may force it)."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    if len(vectors) < 2:
        return -1.0, np.zeros(len(vectors), dtype=int)
    centred = vectors - vectors.mean(axis=0)
    if len(vectors) < MIN_SPLIT or not np.any(np.abs(centred) > 1e-9):
        return -1.0, (np.arange(len(vectors)) > 0).astype(int)
    halves = AgglomerativeClustering(n_clusters=2, metric="cosine", linkage="average").fit_predict(centred)
    if np.bincount(halves).min() < 2:
        return -0.5, halves
    return float(silhouette_score(centred, halves, metric="cosine")), halves


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
