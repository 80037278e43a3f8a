"""Which embedded pieces share a voice: groups split in two while their pieces clearly form two groups.

Starting from one group, a group's pieces are centred on their own mean (so that what they share, the
room, the microphone, the accent, or the other speakers' side of a wider split, no longer counts) and cut in
two by average-linkage agglomerative clustering (scikit-learn); the cut is kept when its silhouette
(scikit-learn, cosine) is at least SPLIT_SILHOUETTE, the clearest cut first. A rule on each group's own
spread rather than one absolute cosine distance: two voices that the encoder places close together (two men
of one accent, a family's voices) still split when they are closer to themselves than to each other, and a
conversation of four voices in two pairs (two women, two men) splits each pair after the first cut
separates the pairs. A side of FEW_PIECES needs a clearer cut (FEW_SILHOUETTE): a silhouette over two
pieces is noisy (on the corpus, a 2+2 cut of one voice's sentences scored 0.39). Measured on the corpus of
bench/diarization.py (docs/accuracy.md). Groups holding fewer than MIN_SHARE of the pieces are outliers
(a cough, two voices in one piece) and join their nearest group, unless min_speakers needs them.
"""

from __future__ import annotations

import numpy as np

SPLIT_SILHOUETTE = 0.25  # a cut's silhouette at least this: two voices (one voice's cuts measured <= 0.26)
FEW_PIECES = 2  # the fewest pieces a voice may have: a cut leaving fewer on a side is an outlier, not a voice
FEW_SILHOUETTE = 0.5  # what a cut needs when a side has only FEW_PIECES: two pieces make a noisy silhouette
MIN_SHARE = 0.05  # of the pieces: a smaller group is folded into its nearest neighbour
MAX_SPEAKERS = 8  # when the request gives no max_speakers


def cluster(vectors: np.ndarray, min_speakers: int = 1, max_speakers: int | None = None) -> np.ndarray:
    """One label (0..k-1) per row of `vectors`; rows are L2-normed embeddings."""
    n = len(vectors)
    upper = min(max_speakers or MAX_SPEAKERS, n)
    labels = np.zeros(n, dtype=int)
    if n < 2 or upper <= 1:
        return labels
    cuts: dict[int, tuple[float, np.ndarray | None]] = {}
    while labels.max() + 1 < upper:
        for group in set(range(labels.max() + 1)) - set(cuts):
            cuts[group] = cut(vectors[labels == group])
        group = max(cuts, key=lambda g: cuts[g][0])
        score, two = cuts[group]
        if score < 0:
            if labels.max() + 1 >= min_speakers:
                break
            group = int(np.argmax(np.bincount(labels)))  # min_speakers forces the largest group's plain cut
            two = halves(vectors[labels == group])
        cuts.pop(group, None)
        rows = np.flatnonzero(labels == group)
        labels[rows[two == 1]] = labels.max() + 1
    return fold_outliers(vectors, labels, keep=max(min_speakers, 1))


def halves(rows: np.ndarray) -> np.ndarray:
    """Rows cut in two by average-linkage agglomerative clustering on cosine distance (scikit-learn)."""
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(n_clusters=2, metric="cosine", linkage="average").fit_predict(rows)


def cut(vectors: np.ndarray) -> tuple[float, np.ndarray | None]:
    """A group's cut in two voices (0/1 per row), its pieces centred on their mean, and by how much its
    silhouette clears the bar (SPLIT_SILHOUETTE; FEW_SILHOUETTE where a side has only FEW_PIECES); -1 and
    no cut where a side would hold fewer than FEW_PIECES."""
    from sklearn.metrics import silhouette_score

    centred = vectors - vectors.mean(axis=0)
    if len(vectors) < 2 * FEW_PIECES or not np.any(np.abs(centred) > 1e-9):
        return -1.0, None
    two = halves(centred)
    smallest = np.bincount(two).min()
    if smallest < FEW_PIECES:
        return -1.0, None
    bar = FEW_SILHOUETTE if smallest == FEW_PIECES else SPLIT_SILHOUETTE
    return float(silhouette_score(centred, two, metric="cosine")) - bar, two


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
