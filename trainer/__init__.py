"""MaSSFormer training and inference: models, losses, data pipeline, training loop, inference."""
