"""Dataset, detector networks, training, evaluation, export and the torch-free predictor (the only torch users)."""
