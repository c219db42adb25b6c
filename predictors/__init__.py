"""Architecture encodings and accuracy/latency predictors (``elasticnas.predictors``)."""
