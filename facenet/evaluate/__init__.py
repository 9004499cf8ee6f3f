"""Evaluation: pair protocols (LFW View 1/2, TSV), verification metrics, reports and plots.

Importing this package is light (NumPy only); the model is reached through `facenet.FaceNet`.

    from facenet.evaluate import evaluate_embeddings
    result = evaluate_embeddings(emb_a, emb_b, labels, folds)   # accuracy, VAL@FAR, AUC, EER...
"""

from .metrics import pair_distances
from .protocols import PairList, lfw_pairs, read_lfw_pairs, read_pair_tsv, write_pair_tsv
from .verification import evaluate_distances, evaluate_embeddings

__all__ = [
    "PairList",
    "evaluate_distances",
    "evaluate_embeddings",
    "evaluate_pairs",
    "lfw_pairs",
    "pair_distances",
    "read_lfw_pairs",
    "read_pair_tsv",
    "write_pair_tsv",
]


def __getattr__(name: str):
    if name == "evaluate_pairs":  # pulls in tqdm and the embedding stage only when used
        from .run import evaluate_pairs

        return evaluate_pairs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
