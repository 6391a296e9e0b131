"""Offset-consistent matching of a query fingerprint against indexed windows.

A copy of training audio matches window after window *at the same time offset*;
music that merely sounds alike matches a window here and there at offsets that
wander. So a match is scored over a run: for a candidate (file, offset), pair
every indexed window of that file with the query window that starts at the same
moment (within half a query hop) and take the best mean similarity over
`RUN_WINDOWS` consecutive pairs (about 6 seconds of audio: the length after which
a DiffRhythm render was reported to turn into a known song). Candidates come
from each query window's nearest indexed windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from composer.originality.fingerprint import INDEX_HOP, QUERY_HOP

RUN_WINDOWS = 5  # consecutive aligned windows (INDEX_HOP apart) a match is scored over
NEIGHBOURS = 8  # nearest indexed windows per query window that propose candidates
CANDIDATES = 24  # candidates scored in full per query


@dataclass(frozen=True)
class Match:
    """A training excerpt a query matches: file index, where in the file and in the query (s)."""

    file: int
    start: float  # seconds into the training file
    query_start: float  # seconds into the query
    similarity: float  # mean cosine similarity over the run
    windows: int  # aligned windows in the run


def _similarities(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    return query.astype(np.float32) @ vectors.astype(np.float32).T


def search(query: np.ndarray, query_times: np.ndarray, vectors: np.ndarray, files: np.ndarray,
           starts: np.ndarray, *, top: int = 5) -> list[Match]:
    """The best `top` matches of a query (`[Nq, D]` at `query_times`) among indexed windows
    (`vectors [Ni, D]` of `files [Ni]` at `starts [Ni]`), best first, at most one per file."""
    if len(query) == 0 or len(vectors) == 0:
        return []
    sims = _similarities(query, vectors)  # [Nq, Ni]
    k = min(NEIGHBOURS, sims.shape[1])
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    votes: dict[tuple[int, int], float] = {}
    for q in range(sims.shape[0]):
        for j in nearest[q]:
            offset = int(round((starts[j] - query_times[q]) / QUERY_HOP))
            key = (int(files[j]), offset)
            votes[key] = votes.get(key, 0.0) + float(sims[q, j])
    ranked = sorted(votes, key=votes.get, reverse=True)[:CANDIDATES]
    best: dict[int, Match] = {}
    for file, offset in ranked:
        match = _score(sims, query_times, files, starts, file, offset * QUERY_HOP)
        if match is not None and (file not in best or match.similarity > best[file].similarity):
            best[file] = match
    return sorted(best.values(), key=lambda m: m.similarity, reverse=True)[:top]


def _score(sims, query_times, files, starts, file: int, offset: float) -> Match | None:
    """The best run of aligned windows of one file at one offset (training time = query time + offset)."""
    members = np.flatnonzero(files == file)
    if len(members) == 0:
        return None
    order = members[np.argsort(starts[members])]
    pairs = []  # (index window, query window)
    for j in order:
        q = int(np.argmin(np.abs(query_times + offset - starts[j])))
        if abs(query_times[q] + offset - starts[j]) <= QUERY_HOP / 2 + 1e-6:
            pairs.append((j, q))
    if not pairs:
        return None
    values = np.array([sims[q, j] for j, q in pairs], dtype=np.float64)
    run = min(RUN_WINDOWS, len(values))
    # runs must be consecutive in training time: a gap (a silent window left out) breaks them
    times = np.array([starts[j] for j, _ in pairs])
    best_mean, best_at = -np.inf, 0
    for i in range(len(values) - run + 1):
        if times[i + run - 1] - times[i] > (run - 1) * INDEX_HOP + 1e-3:
            continue
        mean = values[i: i + run].mean()
        if mean > best_mean:
            best_mean, best_at = mean, i
    if not np.isfinite(best_mean):
        return None
    j, q = pairs[best_at]
    return Match(file=file, start=float(starts[j]), query_start=float(query_times[q]),
                 similarity=float(best_mean), windows=run)
