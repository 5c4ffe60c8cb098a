"""Scene tokenizers: OccWorld-style per-frame VQ-VAE, OccSora-style 4D VQ-VAE, DOME-style KL-VAE."""

from occ4d.models.tokenizers.config import TokenizerConfig
from occ4d.models.tokenizers.tokenizer import (
    OccTokenizer,
    TokenizerOutput,
    balanced_class_weights,
    tokenizer_loss,
)

__all__ = ["TokenizerConfig", "OccTokenizer", "TokenizerOutput", "balanced_class_weights", "tokenizer_loss"]
